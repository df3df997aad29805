package txfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"
)

// genFile is a file of genBlocks blocks rewritten in generations, each
// block recognisable from any 16-byte record of it. A record of a
// compressible block is (g, b); a record of a random-looking block is
// (g ^ mix(b, i), mix(that)), which LZ4 cannot shrink, so the block is
// stored raw.
type genFile struct {
	v     *Volume
	ino   Ino
	noise Ino // a second file whose rewrites keep the log moving
	kind  func(b int) (random bool)
}

const genBlocks = 64

// mix is splitmix64's finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func newGenFile(t *testing.T, v *Volume, kind func(b int) bool) *genFile {
	f := &genFile{v: v, kind: kind}
	a, err := v.Create(RootIno, "f", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := v.Create(RootIno, "noise", 0o644, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	f.ino, f.noise = a.Ino, n.Ino
	if _, err := v.Write(f.ino, f.fill(make([]byte, genBlocks*v.bs), 1), 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil { // on the device, not in a unit buffer
		t.Fatal(err)
	}
	return f
}

// record returns the 16-byte record i of block b in generation g.
func (f *genFile) record(g uint64, b, i int) (uint64, uint64) {
	if !f.kind(b) {
		return g, uint64(b)
	}
	w0 := g ^ mix(uint64(b)<<32|uint64(i))
	return w0, mix(w0)
}

// fill writes generation g of the whole file into buf and returns it.
func (f *genFile) fill(buf []byte, g uint64) []byte {
	bs := f.v.bs
	for b := 0; b < genBlocks; b++ {
		for i := 0; i < bs/16; i++ {
			w0, w1 := f.record(g, b, i)
			binary.LittleEndian.PutUint64(buf[b*bs+16*i:], w0)
			binary.LittleEndian.PutUint64(buf[b*bs+16*i+8:], w1)
		}
	}
	return buf
}

// check verifies that every block of buf (file bytes from off) is one
// generation of its own block. The generation is read off the first whole
// record of each fragment; a fragment too short to hold one is compared
// with nothing.
func (f *genFile) check(buf []byte, off int) error {
	bs := f.v.bs
	want := make([]byte, genBlocks*bs)
	for pos := 0; pos < len(buf); {
		b := (off + pos) / bs
		end := min(len(buf), (b+1)*bs-off)
		rec := pos + (16-(off+pos)%16)%16
		if rec+16 > end {
			pos = end
			continue
		}
		g := binary.LittleEndian.Uint64(buf[rec:])
		if f.kind(b) {
			g ^= mix(uint64(b)<<32 | uint64((off+rec)%bs/16))
		}
		f.fill(want, g)
		if !bytes.Equal(buf[pos:end], want[off+pos:off+end]) {
			return fmt.Errorf("block %d (file offset %d) is not one generation: starts %x", b, off+pos, buf[pos:min(end, pos+32)])
		}
		pos = end
	}
	return nil
}

// Reads run outside the volume lock while the blocks they planned to read
// are overwritten, freed and their segments written again. Every read must
// still return, block by block, one whole generation of what was written,
// and never an error. Blocks alternate between raw and compressed.
func TestReadsWhileBlocksMove(t *testing.T) {
	// A small volume, so the log wraps and reuses segments within seconds.
	v, _ := newTestVolume(t, 24<<20, Options{})
	f := newGenFile(t, v, func(b int) bool { return b%2 == 0 })
	bs := v.bs

	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Add(1)
	go func() { // the writer: rewrites both files over and over
		defer wg.Done()
		rnd := rand.New(rand.NewSource(1))
		buf := make([]byte, genBlocks*bs)
		junk := make([]byte, 1<<20)
		for g := uint64(2); time.Now().Before(deadline); g++ {
			f.fill(buf, g)
			// Whole file, or a random run of blocks.
			lo := rnd.Intn(genBlocks)
			hi := lo + 1 + rnd.Intn(genBlocks-lo)
			if g%4 == 0 {
				lo, hi = 0, genBlocks
			}
			if _, err := v.Write(f.ino, buf[lo*bs:hi*bs], int64(lo*bs)); err != nil {
				errs <- fmt.Errorf("write generation %d: %w", g, err)
				return
			}
			rnd.Read(junk)
			if _, err := v.Write(f.noise, junk, 0); err != nil {
				errs <- fmt.Errorf("write noise: %w", err)
				return
			}
			if g%16 == 0 {
				if err := v.Fsync(f.ino); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(seed))
			buf := make([]byte, genBlocks*bs)
			for time.Now().Before(deadline) {
				off := rnd.Intn(genBlocks*bs - 1)
				n := 1 + rnd.Intn(genBlocks*bs-off)
				got, err := v.Read(f.ino, buf[:n], int64(off))
				if err != nil || got != n {
					errs <- fmt.Errorf("read %d at %d: %d, %v", n, off, got, err)
					return
				}
				if err := f.check(buf[:n], off); err != nil {
					errs <- err
					return
				}
			}
		}(int64(r))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d reads were redone under the lock", v.readRetries.Load())
}

// A read that finds its blocks rewritten by the time it reads the device
// is redone under the lock and returns the newer generation, for raw
// blocks (read in place) and compressed ones alike. The hook moves the
// blocks deterministically: it overwrites the file into segments nothing
// else keeps live, checkpoints so the old blocks' segments are free, and
// writes noise until they are written again.
func TestReadRetriesWhenBlocksMove(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind func(int) bool
	}{
		{"raw", func(int) bool { return true }},
		{"lz4", func(int) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := newTestVolume(t, 24<<20, Options{Cleaner: CleanerOptions{Off: true}})
			// Every free segment is reused as the noise cycles through
			// them: none is kept for the cleaner's next copies.
			v.mu.Lock()
			v.log.KeepForCleaner = false
			v.mu.Unlock()
			f := newGenFile(t, v, tc.kind)
			buf := make([]byte, genBlocks*v.bs)
			junk := make([]byte, 1<<20)
			rand.New(rand.NewSource(1)).Read(junk)
			gen := uint64(1)
			pad, err := v.Create(RootIno, "pad", 0o644, Owner{})
			if err != nil {
				t.Fatal(err)
			}
			testHookReadUnlocked = func() {
				gen++
				// The new generation goes into segments of its own: pad
				// before and after it, then freed, so that nothing but
				// the file keeps them live.
				for i, w := range []func() error{
					func() error { _, err := v.Write(pad.Ino, junk[:512<<10], 0); return err },
					func() error { _, err := v.Write(f.ino, f.fill(buf, gen), 0); return err },
					func() error { _, err := v.Write(pad.Ino, junk[:512<<10], 512<<10); return err },
					func() error { _, err := v.SetAttr(pad.Ino, &SetAttrIn{Valid: SetSize}); return err },
				} {
					if err := w(); err != nil {
						t.Errorf("step %d: %v", i, err)
					}
				}
				if err := v.checkpoint(); err != nil {
					t.Error(err)
				}
				for i := 0; i < 48; i++ { // twice the volume
					junk[0]++
					if _, err := v.Write(f.noise, junk, int64(i%4)<<20); err != nil {
						t.Error(err)
					}
				}
				if err := v.Sync(); err != nil {
					t.Error(err)
				}
			}
			defer func() { testHookReadUnlocked = nil }()
			got := make([]byte, genBlocks*v.bs)
			for round := 0; round < 4; round++ {
				before := v.readRetries.Load()
				n, err := v.Read(f.ino, got, 0)
				if err != nil || n != len(got) {
					t.Fatalf("round %d: read %d, %v", round, n, err)
				}
				if v.readRetries.Load() != before+1 {
					t.Fatalf("round %d: the read was not redone", round)
				}
				// The retry holds the lock, so the hook ran once per
				// round: the read returns the generation it wrote.
				if !bytes.Equal(got, f.fill(buf, gen)) {
					t.Fatalf("round %d: read does not return generation %d", round, gen)
				}
			}
		})
	}
}
