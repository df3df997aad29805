package txfs

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"sync"
	"testing"

	"github.com/txfs/txfs/segment"
)

// benchVolume makes a volume in an image file on the disk of TMPDIR.
func benchVolume(b *testing.B, size int64) *Volume {
	path := filepath.Join(b.TempDir(), "bench.img")
	dev, err := segment.CreateFile(path, size)
	if err != nil {
		b.Fatal(err)
	}
	if err := Format(dev, FormatOptions{}); err != nil {
		b.Fatal(err)
	}
	v, err := Open(dev, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close(); dev.Close() })
	return v
}

// BenchmarkFsync16: 16 goroutines each writing 4 KiB and calling Fsync.
// scripts/enginebench runs the same beside pwrite+fdatasync.
func BenchmarkFsync16(b *testing.B) {
	v := benchVolume(b, 1<<30)
	var inos []Ino
	for w := 0; w < 16; w++ {
		a, _ := v.Create(RootIno, fmt.Sprint(w), 0o644, Owner{})
		inos = append(inos, a.Ino)
	}
	buf := make([]byte, 4096)
	rand.Read(buf)
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < b.N; i += 16 {
				if _, err := v.Write(inos[w], buf, int64(i/16%1024)*4096); err != nil {
					b.Error(err)
					return
				}
				if err := v.Fsync(inos[w]); err != nil {
					b.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
}

// BenchmarkSeqWrite writes 1 MiB chunks sequentially.
func BenchmarkSeqWrite(b *testing.B) {
	v := benchVolume(b, 4<<30)
	a, _ := v.Create(RootIno, "seq", 0o644, Owner{})
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Write(a.Ino, buf, int64(i%2048)*int64(len(buf))); err != nil {
			b.Fatal(err)
		}
	}
	if err := v.Fsync(a.Ino); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSeqRead reads 1 MiB chunks of a file written sequentially.
func BenchmarkSeqRead(b *testing.B) {
	v := benchVolume(b, 2<<30)
	a, _ := v.Create(RootIno, "seq", 0o644, Owner{})
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	for i := 0; i < 256; i++ {
		v.Write(a.Ino, buf, int64(i)<<20)
	}
	v.Fsync(a.Ino)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Read(a.Ino, buf, int64(i%256)<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFsync1: one goroutine writing 4 KiB at random places of a file
// and calling Fsync after each write (fio --fsync=1).
func BenchmarkFsync1(b *testing.B) {
	v := benchVolume(b, 1<<30)
	a, _ := v.Create(RootIno, "f", 0o644, Owner{})
	buf := make([]byte, 4096)
	rand.Read(buf)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Write(a.Ino, buf, int64(rand.Intn(16384))*4096); err != nil {
			b.Fatal(err)
		}
		if err := v.Fsync(a.Ino); err != nil {
			b.Fatal(err)
		}
	}
}
