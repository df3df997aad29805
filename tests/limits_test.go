package tests

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Tests of a full volume as a user meets it: the real binaries, a real
// mount, ordinary programs (dd, ls, rm) beside the test's own writers.
// Every operation must succeed or fail with ENOSPC, never EIO; df must
// promise only what can be written; a delete must give its space back at
// once; a daemon killed while the volume is full must leave an image that
// mounts read-write again.

const mib = 1 << 20

// avail is what df shows as "Avail" on dir, in bytes.
func avail(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	return int64(st.Bavail) * st.Bsize
}

// availSoon is what df shows on dir once it reaches want, or a second
// after the call if it does not: the space a delete frees must show at
// once, not after a timed checkpoint 30 s later.
func availSoon(t *testing.T, dir string, want int64) int64 {
	t.Helper()
	start := time.Now()
	got := avail(t, dir)
	for got < want && time.Since(start) < time.Second {
		time.Sleep(20 * time.Millisecond)
		got = avail(t, dir)
	}
	return got
}

// availSettled returns df's Avail once two readings 300 ms apart agree
// (at most 5 s).
func availSettled(t *testing.T, dir string) int64 {
	t.Helper()
	start := time.Now()
	last := avail(t, dir)
	for time.Since(start) < 5*time.Second {
		time.Sleep(300 * time.Millisecond)
		got := avail(t, dir)
		if got == last {
			return got
		}
		last = got
	}
	t.Errorf("df Avail still changing 5 s after the last write")
	return last
}

// randomBytes fills b with bytes that LZ4 cannot shrink (compression would
// let a volume take more than df promised), the same for the same seed.
func randomBytes(b []byte, seed uint64) {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	rand.NewChaCha8(key).Read(b)
}

// failures collects the errors of a test's writer goroutines (which may
// not call t.Fatal).
type failures struct {
	mu   sync.Mutex
	errs []string
}

func (f *failures) add(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) < 20 {
		f.errs = append(f.errs, fmt.Sprintf(format, a...))
	}
}

func (f *failures) none() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.errs) == 0
}

// report fails the test with what the writers found.
func (f *failures) report(t *testing.T, m *mounted) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		t.Fatalf("%s\ntxfs stderr:\n%s", strings.Join(f.errs, "\n"), m.stderr())
	}
}

// noSpace reports whether err is ENOSPC.
func noSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) }

// fillRound is what one round of fillSmallFiles wrote.
type fillRound struct {
	bytes int64          // bytes of every write that returned success
	files map[string]int // names created per directory
}

// fillSmallFiles has two writers create files of 100 bytes to 30 KB, each
// in a directory of its own, until each gets ENOSPC. Any other error
// fails the test; statfs must answer throughout.
func fillSmallFiles(t *testing.T, m *mounted, round int) fillRound {
	t.Helper()
	res := fillRound{files: map[string]int{}}
	var fails failures
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 2 {
		dir := filepath.Join(m.dir, fmt.Sprintf("r%d-w%d", round, w))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("round %d: mkdir on the emptied volume: %v", round, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
			buf := make([]byte, 30000)
			var written int64
			created := 0
			defer func() {
				mu.Lock()
				res.bytes += written
				res.files[dir] = created
				mu.Unlock()
			}()
			for i := 0; ; i++ {
				if i%1000 == 0 {
					var st syscall.Statfs_t
					if err := syscall.Statfs(dir, &st); err != nil {
						fails.add("writer %d: statfs after %d files: %v", w, i, err)
						return
					}
				}
				n := 100 + rng.IntN(len(buf)-100+1)
				randomBytes(buf[:n], rng.Uint64())
				f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("f%06d", i)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
				if err != nil {
					if !noSpace(err) {
						fails.add("writer %d: create after %d files: %v (want success or ENOSPC)", w, i, err)
					}
					return
				}
				created++
				_, werr := f.Write(buf[:n])
				cerr := f.Close()
				for _, err := range []error{werr, cerr} {
					if err != nil && !noSpace(err) {
						fails.add("writer %d: file %d of %d bytes: %v (want success or ENOSPC)", w, i, n, err)
					}
				}
				if werr != nil || cerr != nil {
					return
				}
				written += int64(n)
			}
		}()
	}
	wg.Wait()
	fails.report(t, m)
	return res
}

// A 256 MiB volume filled with small files by two writers until ENOSPC,
// emptied with rm -rf and filled again on the same mount, four times:
// only ENOSPC, statfs and ls answer while full, every round takes as much
// as the first, deleting everything gives all the space back, and the
// image checks clean after the unmount.
func TestFillSmallFilesRefill(t *testing.T) {
	m := newMount(t)
	empty := avail(t, m.dir)
	var first int64
	for round := range 4 {
		start := time.Now()
		res := fillSmallFiles(t, m, round)
		full := avail(t, m.dir)
		var names int
		for dir, n := range res.files {
			out := m.run(m.dir, "ls", "-l", dir)
			// ls -l prints "total N" and a line per name.
			if got := strings.Count(out, "\n") - 1; got != n {
				t.Errorf("round %d: ls -l %s lists %d names, %d files were created", round, dir, got, n)
			}
			names += n
		}
		t.Logf("round %d: %d files, %d KiB in %v; df Avail %d KiB empty, %d KiB full",
			round, names, res.bytes>>10, time.Since(start).Round(time.Millisecond), empty>>10, full>>10)
		if round == 0 {
			first = res.bytes
			if res.bytes < empty*8/10 {
				t.Errorf("round 0 took %d KiB, df showed %d KiB free before", res.bytes>>10, empty>>10)
			}
		} else if res.bytes < first*9/10 {
			t.Errorf("round %d took %d KiB, round 0 took %d KiB (want at least 90%%)", round, res.bytes>>10, first>>10)
		}
		m.run(m.dir, "rm", "-rf", fmt.Sprintf("r%d-w0", round), fmt.Sprintf("r%d-w1", round))
		got := availSoon(t, m.dir, empty*95/100)
		t.Logf("round %d: df Avail %d KiB a second after rm -rf", round, got>>10)
		if got < empty*95/100 {
			t.Errorf("round %d: df shows %d KiB free a second after rm -rf of everything, %d KiB on the fresh volume", round, got>>10, empty>>10)
		}
		if m.d.exited() {
			t.Fatalf("round %d: the daemon exited: %v\n%s", round, m.d.err, m.stderr())
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	m.stop()
}

// writeFile writes size bytes of random data to a new file in 1 MiB
// writes, stopping at the first error, and returns the bytes every
// successful write took and that error (nil if the whole file was
// written and closed).
func writeFile(path string, size int64, seed uint64) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, mib)
	var written int64
	for written < size {
		n := int(min(size-written, mib))
		randomBytes(buf[:n], seed+uint64(written))
		k, err := f.Write(buf[:n])
		written += int64(k)
		if err != nil {
			f.Close()
			return written, err
		}
	}
	return written, f.Close()
}

// Files of 1 to 10 MiB written to 60% of a 256 MiB volume and deleted,
// three times: the space each round frees is there for the next, and no
// write gets ENOSPC.
func TestBigFilesRefill(t *testing.T) {
	m := newMount(t)
	empty := avail(t, m.dir)
	const target = 256 * mib * 6 / 10
	if empty < target {
		t.Fatalf("df shows %d MiB free on a fresh 256 MiB volume, less than the %d MiB this test writes", empty/mib, target/mib)
	}
	rng := rand.New(rand.NewPCG(2, 0))
	for round := range 3 {
		var written int64
		var names []string
		for i := 0; written < target; i++ {
			size := min(int64(mib+rng.IntN(9*mib+1)), target-written)
			name := filepath.Join(m.dir, fmt.Sprintf("big-%d-%d", round, i))
			n, err := writeFile(name, size, rng.Uint64())
			written += n
			if err != nil {
				t.Fatalf("round %d: %s after %d MiB of %d: %v\ntxfs stderr:\n%s", round, name, written/mib, target/mib, err, m.stderr())
			}
			names = append(names, name)
		}
		for _, name := range names {
			if err := os.Remove(name); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		freed := availSoon(t, m.dir, empty*95/100)
		t.Logf("round %d: %d files, %d MiB written and deleted; df Avail %d MiB (%d MiB on the fresh volume)",
			round, len(names), written/mib, freed/mib, empty/mib)
		if freed < empty*95/100 {
			t.Errorf("round %d: df shows %d MiB free a second after deleting everything, %d MiB on the fresh volume", round, freed/mib, empty/mib)
		}
	}
	m.stop()
}

// ddFill runs dd from /dev/urandom into a new file in 1 MiB blocks until
// the volume is full, and returns the file's size. dd must fail with
// ENOSPC and nothing else.
func ddFill(t *testing.T, m *mounted, name string) int64 {
	t.Helper()
	path := filepath.Join(m.dir, name)
	out, err := m.runErr(m.dir, "dd", "if=/dev/urandom", "of="+path, "bs=1M", "iflag=fullblock")
	if err == nil || !strings.Contains(out, "No space left on device") {
		t.Fatalf("dd into %s until the volume is full: %v (want exit 1 with \"No space left on device\")\n%s\ntxfs stderr:\n%s",
			path, err, out, m.stderr())
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// dd says how much it copied; the file must hold exactly that.
	if c := regexp.MustCompile(`(?m)^(\d+) bytes`).FindStringSubmatch(out); c == nil {
		t.Errorf("dd printed no byte count:\n%s", out)
	} else if n, _ := strconv.ParseInt(c[1], 10, 64); n != st.Size() {
		t.Errorf("dd copied %d bytes, %s has %d", n, path, st.Size())
	}
	return st.Size()
}

// honest checks that a file written until ENOSPC took what df showed free
// before: at least 97% of it and not much more.
func honest(t *testing.T, what string, dfAvail, took int64) {
	t.Helper()
	t.Logf("%s: df showed %d KiB free, one file took %d KiB (%.1f%%)", what, dfAvail>>10, took>>10, 100*float64(took)/float64(dfAvail))
	if took < dfAvail*97/100 {
		t.Errorf("%s: df showed %d KiB free, a file took only %d KiB", what, dfAvail>>10, took>>10)
	}
	if took > dfAvail+dfAvail/50+mib {
		t.Errorf("%s: df showed %d KiB free, a file took %d KiB: df does not count what can be written", what, dfAvail>>10, took>>10)
	}
}

// df is honest: on fresh volumes of every size, dd until ENOSPC takes
// what df showed free; after a delete on a full volume df shows the space
// free at once, and a writer gets all of it.
func TestDfIsHonest(t *testing.T) {
	for _, size := range []string{"64M", "128M", "256M"} {
		t.Run(size, func(t *testing.T) {
			m := newSizedMount(t, size)
			honest(t, size+" fresh", avail(t, m.dir), ddFill(t, m, "fill"))
			if size != "256M" {
				m.stop()
				return
			}

			// Full again, 170 MiB of it one file: deleting that file
			// shows its space free at once.
			if err := os.Remove(filepath.Join(m.dir, "fill")); err != nil {
				t.Fatal(err)
			}
			if _, err := writeFile(filepath.Join(m.dir, "a"), 170*mib, 1); err != nil {
				t.Fatalf("writing 170 MiB into the emptied volume: %v\ntxfs stderr:\n%s", err, m.stderr())
			}
			ddFill(t, m, "b")
			full := avail(t, m.dir)
			if err := os.Remove(filepath.Join(m.dir, "a")); err != nil {
				t.Fatal(err)
			}
			deleted := time.Now()
			freed := availSoon(t, m.dir, 170*mib*95/100)
			t.Logf("df Avail: %d KiB full, %d KiB %v after deleting 170 MiB", full>>10, freed>>10, time.Since(deleted).Round(time.Millisecond))
			if freed < 170*mib*95/100 {
				t.Fatalf("df shows %d KiB free a second after deleting a 170 MiB file on a full volume", freed>>10)
			}
			// Until the checkpoint after the delete is written, df counts
			// what it may cost at most; then the file gets what df shows.
			settled := availSettled(t, m.dir)
			t.Logf("df Avail settled at %d KiB", settled>>10)
			honest(t, "after the delete", settled, ddFill(t, m, "c"))
			m.stop()
		})
	}
}

// fsyncedFile is a file a writer of TestKill9WhileFull wrote.
type fsyncedFile struct {
	path   string
	seed   uint64
	size   int
	synced bool // its fsync returned success
}

func (f *fsyncedFile) content() []byte {
	b := make([]byte, f.size)
	randomBytes(b, f.seed)
	return b
}

// kill -9 while the volume is full and writers get ENOSPC: the image
// checks clean, mounts read-write, holds every file whose fsync returned,
// and deleting the files frees their space.
func TestKill9WhileFull(t *testing.T) {
	m := newSizedMount(t, "64M")
	empty := avail(t, m.dir)
	var fails failures
	var killed atomic.Bool
	var fullHits [2]atomic.Int64
	files := make([][]*fsyncedFile, 2)
	var wg sync.WaitGroup
	for w := range 2 {
		dir := filepath.Join(m.dir, fmt.Sprintf("w%d", w))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(4, uint64(w)))
			for i := 0; ; i++ {
				ff := &fsyncedFile{path: filepath.Join(dir, fmt.Sprintf("f%05d", i)), seed: rng.Uint64(), size: 4096 + rng.IntN(252<<10)}
				err := ff.write()
				// Every file is checked: whole if its fsync returned,
				// else absent or a prefix of its content.
				files[w] = append(files[w], ff)
				switch {
				case err == nil:
					continue
				case killed.Load() && isDeadMountErr(err):
					return
				case !noSpace(err):
					fails.add("writer %d, file %d: %v (want success or ENOSPC)", w, i, err)
					return
				}
				fullHits[w].Add(1)
			}
		}()
	}
	// Kill the daemon once both writers have been getting ENOSPC for a
	// while.
	deadline := time.Now().Add(2 * time.Minute)
	for (fullHits[0].Load() < 20 || fullHits[1].Load() < 20) && time.Now().Before(deadline) && fails.none() {
		time.Sleep(10 * time.Millisecond)
	}
	if fullHits[0].Load() < 20 || fullHits[1].Load() < 20 {
		killed.Store(true)
		m.kill9()
		wg.Wait()
		fails.report(t, m)
		t.Fatalf("the writers got ENOSPC %d and %d times in 2 minutes", fullHits[0].Load(), fullHits[1].Load())
	}
	full := avail(t, m.dir)
	killed.Store(true)
	m.killOnly()
	wg.Wait()
	m.detachDead()
	fails.report(t, m)

	// The crashed image, recovered in memory by fsck, is consistent.
	if code, out := runTimeout(t, toolTimeout, bin("fsck.txfs"), m.img); code != 0 {
		t.Errorf("fsck.txfs of the image killed while full: exit %d (want 0); output:\n%s", code, out)
	}
	m.start()
	var synced, kept int
	var bytesSynced int64
	for w := range files {
		for _, ff := range files[w] {
			got, err := os.ReadFile(ff.path)
			want := ff.content()
			switch {
			case ff.synced && (err != nil || !bytes.Equal(got, want)):
				t.Errorf("%s was fsynced with %d bytes; now %d bytes, %v: %s", ff.path, len(want), len(got), err, firstDiff(got, want))
			case errors.Is(err, fs.ErrNotExist):
			case err != nil:
				t.Errorf("%s: %v", ff.path, err)
			case !bytes.Equal(got, want[:min(len(got), len(want))]) || len(got) > len(want):
				t.Errorf("%s (not fsynced) holds %d bytes that are not a prefix of what was written: %s", ff.path, len(got), firstDiff(got, want))
			}
			if ff.synced {
				synced++
				bytesSynced += int64(ff.size)
			} else if err == nil {
				kept++
			}
		}
	}
	t.Logf("df Avail %d KiB empty, %d KiB full; %d files (%d KiB) fsynced before the kill, all there; %d not fsynced, kept in part",
		empty>>10, full>>10, synced, bytesSynced>>10, kept)

	// Read-write: deleting everything gives the space back, and it can be
	// written again.
	m.run(m.dir, "rm", "-rf", "w0", "w1")
	freed := availSoon(t, m.dir, empty*95/100)
	if freed < empty*95/100 {
		t.Errorf("df shows %d KiB free a second after deleting everything, %d KiB on the fresh volume", freed>>10, empty>>10)
	}
	if _, err := writeFile(filepath.Join(m.dir, "again"), freed/2, 5); err != nil {
		t.Errorf("writing %d KiB after the delete: %v", freed/2>>10, err)
	}
	m.stop()
}

// write creates the file, writes its content in pieces and fsyncs it.
func (f *fsyncedFile) write() error {
	fd, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	data := f.content()
	for off := 0; off < len(data); off += 64 << 10 {
		if _, err := fd.Write(data[off:min(len(data), off+64<<10)]); err != nil {
			fd.Close()
			return err
		}
	}
	if err := fd.Sync(); err != nil {
		fd.Close()
		return err
	}
	f.synced = true
	return fd.Close()
}
