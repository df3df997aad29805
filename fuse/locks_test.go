package fuse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/txfs/txfs"
)

const (
	rd = syscall.F_RDLCK
	wr = syscall.F_WRLCK
	un = syscall.F_UNLCK
)

// lockReq is one request to the table.
type lockReq struct {
	owner      uint64
	handle     any
	typ        uint32
	start, end uint64
	flock      bool
}

// unlock is r as an unlock of the same range.
func (r lockReq) unlock() lockReq {
	r.typ = un
	return r
}

func (r lockReq) args() (*fuse.FileLock, uint32) {
	var flags uint32
	if r.flock {
		flags = fuse.FUSE_LK_FLOCK
	}
	return &fuse.FileLock{Start: r.start, End: r.end, Typ: r.typ, Pid: uint32(r.owner)}, flags
}

// setlk makes a non-blocking request on inode 1 and checks its answer.
func setlk(t *testing.T, tb *lockTable, r lockReq, want syscall.Errno) {
	t.Helper()
	lk, flags := r.args()
	if got := tb.setlk(context.Background(), 1, r.handle, r.owner, lk, flags, false); got != want {
		t.Fatalf("setlk %+v: %v, want %v", r, got, want)
	}
}

// spans shows the POSIX locks of owner on inode 1 as "start-end type ...".
func spans(tb *lockTable, owner uint64) string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	il := tb.inodes[1]
	if il == nil {
		return ""
	}
	var parts []string
	for _, s := range il.posix[owner] {
		end := fmt.Sprint(s.end)
		if s.end == math.MaxUint64 {
			end = "max"
		}
		parts = append(parts, fmt.Sprintf("%d-%s%c", s.start, end, "rw"[s.typ]))
	}
	return strings.Join(parts, " ")
}

func checkSpans(t *testing.T, tb *lockTable, owner uint64, want string) {
	t.Helper()
	if got := spans(tb, owner); got != want {
		t.Fatalf("owner %d holds %q, want %q", owner, got, want)
	}
}

func TestLockTableSplitMerge(t *testing.T) {
	var tb lockTable
	h := new(int)
	lock := func(typ uint32, start, end uint64) {
		t.Helper()
		setlk(t, &tb, lockReq{owner: 1, handle: h, typ: typ, start: start, end: end}, 0)
	}
	lock(wr, 0, 99)
	lock(un, 40, 59)
	checkSpans(t, &tb, 1, "0-39w 60-99w")
	lock(wr, 40, 59) // fills the gap: one lock again
	checkSpans(t, &tb, 1, "0-99w")
	lock(rd, 10, 19) // another type in the middle splits
	checkSpans(t, &tb, 1, "0-9w 10-19r 20-99w")
	lock(rd, 20, 29) // merges with the adjacent read lock
	checkSpans(t, &tb, 1, "0-9w 10-29r 30-99w")
	lock(wr, 5, 35)
	checkSpans(t, &tb, 1, "0-99w")
	lock(wr, 100, 199) // adjacent, same type
	checkSpans(t, &tb, 1, "0-199w")
	lock(rd, 300, 399) // a gap stays a gap
	checkSpans(t, &tb, 1, "0-199w 300-399r")
	lock(rd, 150, math.MaxUint64) // to the end of the file, over both
	checkSpans(t, &tb, 1, "0-149w 150-maxr")
	lock(un, 600, 699)
	checkSpans(t, &tb, 1, "0-149w 150-599r 700-maxr")
	lock(un, 0, math.MaxUint64)
	checkSpans(t, &tb, 1, "")
	if len(tb.inodes) != 0 || len(tb.posixOwners) != 0 {
		t.Errorf("table not empty after unlocking all: %d inodes, %d owners", len(tb.inodes), len(tb.posixOwners))
	}

	// The same range through another open file of the same owner: no
	// merge, so that RELEASE of either can tell its locks apart.
	h2 := new(int)
	lock(wr, 0, 9)
	setlk(t, &tb, lockReq{owner: 1, handle: h2, typ: wr, start: 5, end: 14}, 0)
	checkSpans(t, &tb, 1, "0-4w 5-14w")
	tb.releaseHandle(1, h)
	checkSpans(t, &tb, 1, "5-14w")

	for _, bad := range []lockReq{
		{owner: 1, typ: wr, start: 10, end: 9},
		{owner: 1, typ: 7, start: 0, end: 9},
	} {
		setlk(t, &tb, bad, syscall.EINVAL)
	}
}

func TestLockTableConflicts(t *testing.T) {
	var tb lockTable
	h1, h2, h3 := new(int), new(int), new(int)
	setlk(t, &tb, lockReq{owner: 1, handle: h1, typ: wr, start: 0, end: 9}, 0)
	setlk(t, &tb, lockReq{owner: 2, handle: h2, typ: rd, start: 5, end: 5}, syscall.EAGAIN)
	setlk(t, &tb, lockReq{owner: 2, handle: h2, typ: wr, start: 9, end: 20}, syscall.EAGAIN)
	// An owner never conflicts with itself, whatever file it uses.
	setlk(t, &tb, lockReq{owner: 1, handle: h3, typ: rd, start: 0, end: 19}, 0)
	// Read locks share.
	setlk(t, &tb, lockReq{owner: 2, handle: h2, typ: rd, start: 10, end: 19}, 0)
	setlk(t, &tb, lockReq{owner: 3, handle: h3, typ: rd, start: 15, end: 15}, 0)
	setlk(t, &tb, lockReq{owner: 3, handle: h3, typ: wr, start: 15, end: 15}, syscall.EAGAIN)
	// Unlocking by one reader is not enough for a writer.
	setlk(t, &tb, lockReq{owner: 2, handle: h2, typ: un, start: 0, end: math.MaxUint64}, 0)
	setlk(t, &tb, lockReq{owner: 3, handle: h3, typ: wr, start: 15, end: 15}, syscall.EAGAIN)
	setlk(t, &tb, lockReq{owner: 1, handle: h1, typ: un, start: 10, end: 19}, 0)
	setlk(t, &tb, lockReq{owner: 3, handle: h3, typ: wr, start: 15, end: 15}, 0)
	// Unlocking what is not locked is fine.
	setlk(t, &tb, lockReq{owner: 4, typ: un, start: 0, end: 100}, 0)
	checkSpans(t, &tb, 4, "")
}

func TestLockTableGetlk(t *testing.T) {
	var tb lockTable
	setlk(t, &tb, lockReq{owner: 10, typ: rd, start: 10, end: 19}, 0)
	setlk(t, &tb, lockReq{owner: 20, typ: wr, start: 30, end: 39}, 0)
	setlk(t, &tb, lockReq{owner: 5, typ: wr, start: 50, end: 59}, 0)
	setlk(t, &tb, lockReq{owner: 6, typ: wr, start: 50, end: 50}, syscall.EAGAIN)
	setlk(t, &tb, lockReq{owner: 7, typ: rd, start: 60, end: 69}, 0)
	setlk(t, &tb, lockReq{owner: 8, typ: rd, start: 60, end: 61}, 0)

	for _, c := range []struct {
		owner      uint64
		typ        uint32
		start, end uint64
		want       fuse.FileLock
	}{
		// The first conflicting lock, with the pid that took it.
		{1, wr, 0, math.MaxUint64, fuse.FileLock{Start: 10, End: 19, Typ: rd, Pid: 10}},
		// Read locks do not conflict with a read.
		{1, rd, 0, math.MaxUint64, fuse.FileLock{Start: 30, End: 39, Typ: wr, Pid: 20}},
		// Its own locks never conflict.
		{10, wr, 0, 25, fuse.FileLock{Start: 0, End: 25, Typ: un}},
		{1, wr, 20, 29, fuse.FileLock{Start: 20, End: 29, Typ: un}},
		{1, rd, 39, 45, fuse.FileLock{Start: 30, End: 39, Typ: wr, Pid: 20}},
		// Two at the same start: the lower owner.
		{1, wr, 60, 60, fuse.FileLock{Start: 60, End: 69, Typ: rd, Pid: 7}},
		{7, wr, 60, 60, fuse.FileLock{Start: 60, End: 61, Typ: rd, Pid: 8}},
	} {
		var out fuse.FileLock
		lk := &fuse.FileLock{Start: c.start, End: c.end, Typ: c.typ}
		if errno := tb.getlk(1, c.owner, lk, 0, &out); errno != 0 || out != c.want {
			t.Errorf("getlk owner %d type %d %d-%d: %+v, %v; want %+v", c.owner, c.typ, c.start, c.end, out, errno, c.want)
		}
	}
	var out fuse.FileLock
	if errno := tb.getlk(1, 1, &fuse.FileLock{Typ: un, End: 9}, 0, &out); errno != syscall.EINVAL {
		t.Errorf("getlk F_UNLCK: %v, want EINVAL", errno)
	}
	if errno := tb.getlk(2, 1, &fuse.FileLock{Typ: wr, End: 9}, 0, &out); errno != 0 || out.Typ != un {
		t.Errorf("getlk on an inode without locks: %+v, %v", out, errno)
	}
}

func TestLockTableFlock(t *testing.T) {
	var tb lockTable
	a, b, c := new(int), new(int), new(int)
	whole := func(owner uint64, h any, typ uint32) lockReq {
		return lockReq{owner: owner, handle: h, typ: typ, start: 0, end: math.MaxInt64, flock: true}
	}
	setlk(t, &tb, whole(1, a, wr), 0)
	// flock and POSIX locks are separate namespaces.
	setlk(t, &tb, lockReq{owner: 2, handle: b, typ: wr, start: 0, end: math.MaxUint64}, 0)
	setlk(t, &tb, whole(2, b, rd), syscall.EAGAIN)
	setlk(t, &tb, whole(1, a, wr), 0) // again: nothing changes
	setlk(t, &tb, whole(1, a, rd), 0) // downgrade
	setlk(t, &tb, whole(2, b, rd), 0)
	var out fuse.FileLock
	if errno := tb.getlk(1, 3, &fuse.FileLock{Typ: wr, End: math.MaxInt64}, fuse.FUSE_LK_FLOCK, &out); errno != 0 || out.Typ != rd {
		t.Errorf("flock getlk: %+v, %v", out, errno)
	}
	// An upgrade that fails loses the shared lock, as on Linux.
	setlk(t, &tb, whole(1, a, wr), syscall.EAGAIN)
	setlk(t, &tb, whole(2, b, wr), 0)
	setlk(t, &tb, whole(2, b, un), 0)
	// A reused owner number through another file is another holder.
	setlk(t, &tb, whole(3, a, wr), 0)
	setlk(t, &tb, whole(3, c, wr), 0)
	tb.releaseHandle(1, a)
	setlk(t, &tb, whole(4, b, rd), syscall.EAGAIN)
	tb.releaseHandle(1, c)
	setlk(t, &tb, whole(4, b, rd), 0)
	checkSpans(t, &tb, 2, "0-maxw") // untouched by all of it
}

// answer waits for the answer to a blocking request.
func answer[E any](t *testing.T, done <-chan E, what string) E {
	t.Helper()
	select {
	case e := <-done:
		return e
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still waiting after 10s", what)
		panic("unreachable")
	}
}

// pending fails if a blocking request has been answered within a while.
func pending[E any](t *testing.T, done <-chan E, what string) {
	t.Helper()
	select {
	case e := <-done:
		t.Fatalf("%s: answered %v while the lock is held", what, e)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestLockTableWaiters(t *testing.T) {
	var tb lockTable
	h1, h2 := new(int), new(int)
	setlk(t, &tb, lockReq{owner: 1, handle: h1, typ: wr, start: 0, end: 9}, 0)

	done := make(chan syscall.Errno, 1)
	go func() {
		lk, flags := lockReq{owner: 2, typ: wr, start: 5, end: 5}.args()
		done <- setlkw(&tb, h2, 2, lk, flags)
	}()
	pending(t, done, "SETLKW")
	// The table is not held meanwhile.
	setlk(t, &tb, lockReq{owner: 3, typ: rd, start: 20, end: 29}, 0)
	var out fuse.FileLock
	if errno := tb.getlk(1, 3, &fuse.FileLock{Typ: wr, End: 100}, 0, &out); errno != 0 || out.Pid != 1 {
		t.Fatalf("getlk while a request waits: %+v, %v", out, errno)
	}
	// Unlocking a part that does not cover the wanted byte is no help.
	setlk(t, &tb, lockReq{owner: 1, handle: h1, typ: un, start: 0, end: 4}, 0)
	pending(t, done, "SETLKW after a partial unlock")
	// A downgrade to a read lock still excludes a writer.
	setlk(t, &tb, lockReq{owner: 1, handle: h1, typ: rd, start: 5, end: 9}, 0)
	pending(t, done, "SETLKW after a downgrade")
	tb.releaseOwner(1, 1)
	if errno := answer(t, done, "SETLKW"); errno != 0 {
		t.Fatalf("SETLKW: %v", errno)
	}
	checkSpans(t, &tb, 2, "5-5w")

	// A flock waiter is woken by the holder's file going away.
	setlk(t, &tb, lockReq{owner: 7, handle: h1, typ: wr, start: 0, end: math.MaxInt64, flock: true}, 0)
	go func() {
		lk, flags := lockReq{owner: 8, typ: rd, start: 0, end: math.MaxInt64, flock: true}.args()
		done <- setlkw(&tb, h2, 8, lk, flags)
	}()
	pending(t, done, "flock SETLKW")
	tb.releaseHandle(1, h1)
	if errno := answer(t, done, "flock SETLKW"); errno != 0 {
		t.Fatalf("flock SETLKW: %v", errno)
	}
}

// setlkw is a blocking request on inode 1 that cannot be cancelled.
func setlkw(tb *lockTable, h any, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return tb.setlk(context.Background(), 1, h, owner, lk, flags, true)
}

func TestLockTableCancel(t *testing.T) {
	var tb lockTable
	setlk(t, &tb, lockReq{owner: 1, typ: wr, start: 0, end: math.MaxUint64}, 0)
	for _, flock := range []bool{false, true} {
		if flock {
			setlk(t, &tb, lockReq{owner: 1, typ: wr, end: math.MaxInt64, flock: true}, 0)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan syscall.Errno, 1)
		go func() {
			lk, flags := lockReq{owner: 2, typ: rd, start: 7, end: 7, flock: flock}.args()
			done <- tb.setlk(ctx, 1, nil, 2, lk, flags, true)
		}()
		pending(t, done, "SETLKW")
		cancel()
		if errno := answer(t, done, "cancelled SETLKW"); errno != syscall.EINTR {
			t.Fatalf("cancelled SETLKW (flock %v): %v, want EINTR", flock, errno)
		}
	}
	// The interrupted requests left nothing behind.
	setlk(t, &tb, lockReq{owner: 1, typ: un, start: 0, end: math.MaxUint64}, 0)
	setlk(t, &tb, lockReq{owner: 1, typ: un, end: math.MaxInt64, flock: true}, 0)
	if len(tb.inodes) != 0 {
		t.Errorf("%d inodes left in the table", len(tb.inodes))
	}
}

// waitOn makes a blocking request in the background and returns where
// its answer arrives; cancel interrupts it.
func waitOn(tb *lockTable, ino txfs.Ino, r lockReq) (done <-chan syscall.Errno, cancel func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan syscall.Errno, 1)
	go func() {
		lk, flags := r.args()
		ch <- tb.setlk(ctx, ino, r.handle, r.owner, lk, flags, true)
	}()
	return ch, cancel
}

// waitsRecorded is how many waiting requests the deadlock search sees.
func waitsRecorded(tb *lockTable) int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	n := 0
	for _, ws := range tb.waits {
		n += len(ws)
	}
	return n
}

// byte1 is a write lock on byte b.
func byte1(owner uint64, b uint64) lockReq {
	return lockReq{owner: owner, typ: wr, start: b, end: b}
}

func TestLockTableDeadlock(t *testing.T) {
	for _, c := range []struct {
		name         string
		held         [2]lockReq
		want1, want2 lockReq
		after        string // owner 1's locks once it got want1
	}{
		{"each wants the other's byte", [2]lockReq{byte1(1, 0), byte1(2, 1)}, byte1(1, 1), byte1(2, 0), "0-1w"},
		{"two readers upgrade", [2]lockReq{
			{owner: 1, typ: rd, start: 0, end: 9},
			{owner: 2, typ: rd, start: 0, end: 9},
		}, byte1(1, 5), byte1(2, 5), "0-4r 5-5w 6-9r"},
	} {
		var tb lockTable
		setlk(t, &tb, c.held[0], 0)
		setlk(t, &tb, c.held[1], 0)
		done1, cancel1 := waitOn(&tb, 1, c.want1)
		defer cancel1()
		pending(t, done1, c.name+": owner 1 waiting for owner 2")
		// Owner 2 would wait for owner 1, who waits for owner 2.
		done2, cancel2 := waitOn(&tb, 1, c.want2)
		defer cancel2()
		if errno := answer(t, done2, c.name+": owner 2"); errno != syscall.EDEADLK {
			t.Fatalf("%s: owner 2 closing the cycle: %v, want EDEADLK", c.name, errno)
		}
		// The refused request changed nothing: owner 1 still waits,
		// and gets the lock when owner 2 lets go.
		pending(t, done1, c.name+": owner 1 after the refusal")
		setlk(t, &tb, lockReq{owner: 2, typ: un, start: 0, end: math.MaxUint64}, 0)
		if errno := answer(t, done1, c.name+": owner 1 after owner 2 unlocked"); errno != 0 {
			t.Fatalf("%s: owner 1: %v", c.name, errno)
		}
		checkSpans(t, &tb, 1, c.after)
		if n := waitsRecorded(&tb); n != 0 {
			t.Errorf("%s: %d waits recorded with nobody waiting", c.name, n)
		}
	}
}

// TestLockTableDeadlockChain: a cycle through several owners and inodes
// is found, up to the bound; a chain that is no cycle waits.
func TestLockTableDeadlockChain(t *testing.T) {
	for _, n := range []int{3, maxDeadlockSteps + 2, maxDeadlockSteps + 3} {
		var tb lockTable
		// Owner i holds inode i+1 and waits for inode i+2, held by
		// owner i+1; the last owner then asks for owner 0's inode.
		ino := func(i int) txfs.Ino { return txfs.Ino(i + 1) }
		for i := 0; i < n; i++ {
			lk, flags := byte1(uint64(i), 0).args()
			if errno := tb.setlk(context.Background(), ino(i), nil, uint64(i), lk, flags, false); errno != 0 {
				t.Fatal(errno)
			}
		}
		var cancels []func()
		for i := 0; i < n-1; i++ {
			done, cancel := waitOn(&tb, ino(i+1), byte1(uint64(i), 0))
			cancels = append(cancels, cancel)
			pending(t, done, fmt.Sprintf("owner %d of %d", i, n))
		}
		done, cancel := waitOn(&tb, ino(0), byte1(uint64(n-1), 0))
		cancels = append(cancels, cancel)
		// Linux finds cycles of up to maxDeadlockSteps+2 owners.
		if n <= maxDeadlockSteps+2 {
			if errno := answer(t, done, "the last owner"); errno != syscall.EDEADLK {
				t.Errorf("cycle of %d owners: %v, want EDEADLK", n, errno)
			}
		} else {
			pending(t, done, fmt.Sprintf("cycle of %d owners, longer than the search", n))
		}
		for _, c := range cancels {
			c()
		}
	}

	// A chain that does not lead back to the caller is no deadlock.
	var tb lockTable
	setlk(t, &tb, byte1(1, 0), 0)
	setlk(t, &tb, byte1(2, 1), 0)
	setlk(t, &tb, byte1(3, 2), 0)
	done2, cancel2 := waitOn(&tb, 1, byte1(2, 2)) // 2 waits for 3
	defer cancel2()
	pending(t, done2, "owner 2")
	done1, cancel1 := waitOn(&tb, 1, byte1(1, 1)) // 1 waits for 2
	defer cancel1()
	pending(t, done1, "owner 1 waiting for a chain")
	// An interrupted wait leaves no record behind.
	cancel1()
	if errno := answer(t, done1, "interrupted owner 1"); errno != syscall.EINTR {
		t.Fatalf("interrupted owner 1: %v", errno)
	}
	if n := waitsRecorded(&tb); n != 1 {
		t.Errorf("%d waits recorded, want owner 2's", n)
	}
}

// TestLockTableDeadlockRelease: a release forgets what its waiters
// waited for, so an owner that unlocks and at once asks for what a
// former waiter holds is not refused while that waiter has yet to run.
func TestLockTableDeadlockRelease(t *testing.T) {
	var tb lockTable
	setlk(t, &tb, byte1(1, 0), 0)
	setlk(t, &tb, byte1(2, 1), 0)
	done1, cancel1 := waitOn(&tb, 1, byte1(1, 1))
	defer cancel1()
	pending(t, done1, "owner 1")
	setlk(t, &tb, byte1(2, 1).unlock(), 0)
	if n := waitsRecorded(&tb); n != 0 {
		t.Errorf("%d waits recorded after the release, want none", n)
	}
	done2, cancel2 := waitOn(&tb, 1, byte1(2, 0))
	defer cancel2()
	if errno := answer(t, done1, "owner 1 after the release"); errno != 0 {
		t.Fatalf("owner 1: %v", errno)
	}
	pending(t, done2, "owner 2 waiting for owner 1, who waits no more")
	tb.releaseOwner(1, 1)
	if errno := answer(t, done2, "owner 2"); errno != 0 {
		t.Fatalf("owner 2: %v", errno)
	}
}

// TestLockTableFlockNoDeadlockCheck: flock waits are never refused, as on
// Linux, and flock waits do not count for POSIX requests.
func TestLockTableFlockNoDeadlockCheck(t *testing.T) {
	var tb lockTable
	a, b := new(int), new(int)
	whole := func(owner uint64, h any) lockReq {
		return lockReq{owner: owner, handle: h, typ: wr, start: 0, end: math.MaxInt64, flock: true}
	}
	for i, r := range []lockReq{whole(1, a), whole(2, b)} {
		lk, flags := r.args()
		if errno := tb.setlk(context.Background(), txfs.Ino(i+1), r.handle, r.owner, lk, flags, false); errno != 0 {
			t.Fatal(errno)
		}
	}
	done1, cancel1 := waitOn(&tb, 2, whole(1, a))
	defer cancel1()
	pending(t, done1, "flock of owner 1")
	done2, cancel2 := waitOn(&tb, 1, whole(2, b))
	defer cancel2()
	pending(t, done2, "flock of owner 2 closing a cycle")
	if n := waitsRecorded(&tb); n != 0 {
		t.Errorf("%d flock waits recorded", n)
	}
}

func TestLockTableRelease(t *testing.T) {
	var tb lockTable
	h1, h2 := new(int), new(int)
	setlk(t, &tb, lockReq{owner: 1, handle: h1, typ: wr, start: 0, end: 9}, 0)
	setlk(t, &tb, lockReq{owner: 1, handle: h2, typ: wr, start: 20, end: 29}, 0)
	setlk(t, &tb, lockReq{owner: 2, handle: h2, typ: wr, start: 40, end: 49}, 0)
	setlk(t, &tb, lockReq{owner: 1, handle: h1, typ: wr, end: math.MaxInt64, flock: true}, 0)
	lk := &fuse.FileLock{Typ: wr, End: 9, Pid: 1}
	if errno := tb.setlk(context.Background(), 2, h1, 1, lk, 0, false); errno != 0 {
		t.Fatal(errno)
	}
	if !tb.hasPosix(1) || !tb.hasPosix(2) || tb.hasPosix(3) {
		t.Fatalf("hasPosix wrong: %v", tb.posixOwners)
	}

	// FLUSH: the owner's POSIX locks on that inode only.
	tb.releaseOwner(1, 1)
	checkSpans(t, &tb, 1, "")
	checkSpans(t, &tb, 2, "40-49w")
	setlk(t, &tb, lockReq{owner: 3, typ: rd, end: math.MaxInt64, flock: true}, syscall.EAGAIN)
	if tb.posixOwners[1] != 1 {
		t.Errorf("owner 1 holds locks on %d inodes, want 1", tb.posixOwners[1])
	}

	// RELEASE: what went through that file.
	tb.releaseHandle(1, h1)
	setlk(t, &tb, lockReq{owner: 3, typ: rd, end: math.MaxInt64, flock: true}, 0)
	checkSpans(t, &tb, 2, "40-49w")
	tb.releaseHandle(1, h2)
	checkSpans(t, &tb, 2, "")
	setlk(t, &tb, lockReq{owner: 3, typ: un, end: math.MaxInt64, flock: true}, 0)
	if len(tb.inodes) != 1 || tb.hasPosix(2) {
		t.Errorf("left: %d inodes, owners %v; want inode 2 of owner 1", len(tb.inodes), tb.posixOwners)
	}
}

// Tests on a mount. OFD locks belong to the open file, so two opens in
// this process conflict; classic fcntl locks belong to the process, so
// their tests run a child (this test binary again, see
// TestLocksHelperProcess).

// ofd calls fcntl with an OFD command on f.
func ofd(f *os.File, cmd int, typ int16, start, length int64) (unix.Flock_t, error) {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: start, Len: length}
	err := unix.FcntlFlock(f.Fd(), cmd, &lk)
	return lk, err
}

func openRW(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// procLocks returns the lines of /proc/locks that name the file f.
func procLocks(t *testing.T, f *os.File) []string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf(" %02x:%02x:%d ", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Skipf("no /proc/locks: %v", err)
	}
	var lines []string
	for l := range strings.Lines(string(b)) {
		if strings.Contains(l, id) {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestLocksOFD(t *testing.T) {
	mnt := testMount(t)
	p := filepath.Join(mnt, "f")
	f1, f2 := openRW(t, p), openRW(t, p)

	if _, err := ofd(f1, unix.F_OFD_SETLK, wr, 0, 100); err != nil {
		t.Fatalf("OFD lock: %v", err)
	}
	if _, err := ofd(f2, unix.F_OFD_SETLK, rd, 50, 1); err != unix.EAGAIN {
		t.Errorf("conflicting OFD lock: %v, want EAGAIN", err)
	}
	lk, err := ofd(f2, unix.F_OFD_GETLK, rd, 0, 0)
	if err != nil || lk.Type != wr || lk.Start != 0 || lk.Len != 100 {
		t.Errorf("OFD_GETLK: %+v, %v; want the write lock 0+100", lk, err)
	}
	// The daemon holds it, not the kernel: /proc/locks lists only the
	// kernel's. (The same lock on a local file shows there.)
	if l := procLocks(t, f1); len(l) != 0 {
		t.Errorf("/proc/locks lists the lock on the mount: %q", l)
	}
	local := openRW(t, filepath.Join(t.TempDir(), "local"))
	if _, err := ofd(local, unix.F_OFD_SETLK, wr, 0, 1); err != nil {
		t.Fatal(err)
	}
	if l := procLocks(t, local); len(l) != 1 {
		t.Errorf("/proc/locks for a local lock: %q", l)
	}

	// Unlock the middle: it is free, the rest is not.
	if _, err := ofd(f1, unix.F_OFD_SETLK, un, 40, 20); err != nil {
		t.Fatal(err)
	}
	if lk, err := ofd(f2, unix.F_OFD_GETLK, wr, 40, 20); err != nil || lk.Type != un {
		t.Errorf("OFD_GETLK of the unlocked middle: %+v, %v", lk, err)
	}
	if _, err := ofd(f2, unix.F_OFD_SETLK, wr, 40, 20); err != nil {
		t.Errorf("OFD lock of the unlocked middle: %v", err)
	}
	// The first conflicting lock, whole.
	if lk, err := ofd(f2, unix.F_OFD_GETLK, wr, 30, 40); err != nil || lk.Type != wr || lk.Start != 0 || lk.Len != 40 {
		t.Errorf("OFD_GETLK 30+40: %+v, %v; want f1's 0+40", lk, err)
	}
	if lk, err := ofd(f1, unix.F_OFD_GETLK, wr, 0, 0); err != nil || lk.Type != wr || lk.Start != 40 || lk.Len != 20 {
		t.Errorf("OFD_GETLK from f1: %+v, %v; want f2's 40+20", lk, err)
	}

	// Read locks share; a write lock over them waits for all.
	f3 := openRW(t, p)
	for _, f := range []*os.File{f1, f3} {
		if _, err := ofd(f, unix.F_OFD_SETLK, rd, 200, 10); err != nil {
			t.Fatalf("shared read lock: %v", err)
		}
	}
	if _, err := ofd(f2, unix.F_OFD_SETLK, wr, 205, 1); err != unix.EAGAIN {
		t.Errorf("write over read locks: %v, want EAGAIN", err)
	}
}

func TestLocksFlock(t *testing.T) {
	mnt := testMount(t)
	p := filepath.Join(mnt, "f")
	f1, f2 := openRW(t, p), openRW(t, p)
	if err := unix.Flock(int(f1.Fd()), unix.LOCK_EX); err != nil {
		t.Fatalf("flock: %v", err)
	}
	if err := unix.Flock(int(f2.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Errorf("second LOCK_EX: %v, want EWOULDBLOCK", err)
	}
	if err := unix.Flock(int(f2.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Errorf("LOCK_SH under LOCK_EX: %v, want EWOULDBLOCK", err)
	}
	// A dup shares the open file, and so the lock.
	dup, err := unix.Dup(int(f1.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(dup, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Errorf("LOCK_EX through a dup: %v", err)
	}
	unix.Close(dup) // not the last close: the lock stays
	if err := unix.Flock(int(f2.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Errorf("LOCK_EX after closing a dup: %v, want EWOULDBLOCK", err)
	}
	// flock and POSIX locks do not see each other.
	if _, err := ofd(f2, unix.F_OFD_SETLK, wr, 0, 0); err != nil {
		t.Errorf("OFD lock under a flock: %v", err)
	}
	if err := unix.Flock(int(f1.Fd()), unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f2.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		t.Errorf("two LOCK_SH: %v", err)
	}
	if err := unix.Flock(int(f1.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f2.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Errorf("LOCK_EX after the other unlocked: %v", err)
	}
	// The last close releases it (RELEASE).
	f2.Close()
	f3 := openRW(t, p)
	if err := unix.Flock(int(f3.Fd()), unix.LOCK_EX); err != nil {
		t.Errorf("LOCK_EX after the holder closed: %v", err)
	}
}

// lockw runs a blocking OFD lock in the background.
func lockw(f *os.File, typ int16, start, length int64) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := ofd(f, unix.F_OFD_SETLKW, typ, start, length)
		done <- err
	}()
	return done
}

func TestLocksOFDWait(t *testing.T) {
	mnt := testMount(t)
	p := filepath.Join(mnt, "f")
	f1, f2, f3 := openRW(t, p), openRW(t, p), openRW(t, p)

	if _, err := ofd(f1, unix.F_OFD_SETLK, wr, 0, 10); err != nil {
		t.Fatal(err)
	}
	done := lockw(f2, wr, 5, 10)
	pending(t, done, "OFD_SETLKW")
	if _, err := ofd(f1, unix.F_OFD_SETLK, un, 0, 10); err != nil {
		t.Fatal(err)
	}
	if err := answer(t, done, "OFD_SETLKW after the unlock"); err != nil {
		t.Fatal(err)
	}

	// Closing the holder's file releases its locks.
	done = lockw(f3, rd, 0, 0)
	pending(t, done, "OFD_SETLKW on f2's lock")
	f2.Close()
	if err := answer(t, done, "OFD_SETLKW after the holder closed"); err != nil {
		t.Fatal(err)
	}
}

// TestLocksHelperProcess is the child of the classic fcntl lock tests,
// not a test: with TXFS_LOCKS_HELPER set it runs the commands it reads
// from stdin on the file TXFS_LOCKS_FILE and answers "ok" or the error.
func TestLocksHelperProcess(t *testing.T) {
	if os.Getenv("TXFS_LOCKS_HELPER") == "" {
		t.Skip("the child of TestLocksClassic")
	}
	p := os.Getenv("TXFS_LOCKS_FILE")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	// byteLock sets a write lock on byte b, or unlocks it.
	byteLock := func(cmd int, typ int16, b string) error {
		start, err := strconv.ParseInt(b, 10, 64)
		if err != nil {
			return err
		}
		lk := unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: start, Len: 1}
		return unix.FcntlFlock(f.Fd(), cmd, &lk)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var err error
		switch args := strings.Fields(in.Text()); args[0] {
		case "lock": // bytes 0 to 99, or byte N
			if len(args) > 1 {
				err = byteLock(unix.F_SETLK, wr, args[1])
				break
			}
			lk := unix.Flock_t{Type: wr, Whence: io.SeekStart, Start: 0, Len: 100}
			err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
		case "lockw": // byte 0, or byte N, waiting
			fmt.Println("waiting")
			b := "0"
			if len(args) > 1 {
				b = args[1]
			}
			err = byteLock(unix.F_SETLKW, wr, b)
		case "unlock": // byte N
			err = byteLock(unix.F_SETLK, un, args[1])
		case "close-other": // open and close another descriptor
			var g *os.File
			if g, err = os.Open(p); err == nil {
				err = g.Close()
			}
		}
		if err != nil {
			fmt.Println(err)
		} else {
			fmt.Println("ok")
		}
	}
	os.Exit(0)
}

// child is a running TestLocksHelperProcess.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out chan string // its answers; closed when it exits
}

func startChild(t *testing.T, p string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLocksHelperProcess$")
	cmd.Env = append(os.Environ(), "TXFS_LOCKS_HELPER=1", "TXFS_LOCKS_FILE="+p)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, out: make(chan string, 10)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.out <- sc.Text()
		}
		close(c.out)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return c
}

// do sends a command and returns the child's answer.
func (c *child) do(t *testing.T, cmd string) string {
	t.Helper()
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		t.Fatal(err)
	}
	return c.answer(t, cmd)
}

func (c *child) answer(t *testing.T, cmd string) string {
	t.Helper()
	select {
	case l, ok := <-c.out:
		if !ok {
			t.Fatalf("%s: the child ended", cmd)
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer after 10s", cmd)
		return ""
	}
}

// classicGetlk asks with F_GETLK from this process about bytes 0 to 99.
func classicGetlk(t *testing.T, f *os.File) unix.Flock_t {
	t.Helper()
	lk := unix.Flock_t{Type: wr, Whence: io.SeekStart, Start: 0, Len: 100}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil {
		t.Fatalf("F_GETLK: %v", err)
	}
	return lk
}

func TestLocksClassic(t *testing.T) {
	mnt := testMount(t)
	p := filepath.Join(mnt, "f")
	f := openRW(t, p)
	c := startChild(t, p)
	if got := c.do(t, "lock"); got != "ok" {
		t.Fatalf("child's F_SETLK: %s", got)
	}
	lk := classicGetlk(t, f)
	if lk.Type != wr || lk.Start != 0 || lk.Len != 100 || int(lk.Pid) != c.cmd.Process.Pid {
		t.Errorf("F_GETLK: %+v, want the child's (pid %d) write lock 0+100", lk, c.cmd.Process.Pid)
	}
	if _, err := ofd(f, unix.F_OFD_SETLK, rd, 99, 1); err != unix.EAGAIN {
		t.Errorf("OFD lock over the child's: %v, want EAGAIN", err)
	}
	// Closing any descriptor of the file drops the process's locks
	// (FLUSH), though the one it locked through stays open.
	if got := c.do(t, "close-other"); got != "ok" {
		t.Fatalf("child's close: %s", got)
	}
	if lk := classicGetlk(t, f); lk.Type != un {
		t.Errorf("F_GETLK after the child closed another descriptor: %+v", lk)
	}
	if _, err := ofd(f, unix.F_OFD_SETLK, wr, 0, 100); err != nil {
		t.Errorf("OFD lock after the child's close: %v", err)
	}
}

// TestLocksDeadlock: two processes that each hold a byte and wait for
// the other's. The second request gets EDEADLK at once, on the local
// filesystem as on the mount, and the first still gets its lock once
// the second process lets go.
func TestLocksDeadlock(t *testing.T) {
	mnt := testMount(t)
	for _, dir := range []string{t.TempDir(), mnt} {
		p := filepath.Join(dir, "f")
		openRW(t, p)
		a, b := startChild(t, p), startChild(t, p)
		for _, c := range []struct {
			who *child
			cmd string
		}{{a, "lock 0"}, {b, "lock 1"}} {
			if got := c.who.do(t, c.cmd); got != "ok" {
				t.Fatalf("%s: %s: %s", dir, c.cmd, got)
			}
		}
		if got := a.do(t, "lockw 1"); got != "waiting" {
			t.Fatalf("%s: %q", dir, got)
		}
		select {
		case l := <-a.out:
			t.Fatalf("%s: F_SETLKW answered %q while the lock is held", dir, l)
		case <-time.After(200 * time.Millisecond):
		}
		if got := b.do(t, "lockw 0"); got != "waiting" {
			t.Fatalf("%s: %q", dir, got)
		}
		if got, want := b.answer(t, "lockw 0"), syscall.EDEADLK.Error(); got != want {
			t.Errorf("%s: F_SETLKW that closes the cycle: %q, want %q", dir, got, want)
		}
		if got := b.do(t, "unlock 1"); got != "ok" {
			t.Fatalf("%s: unlock: %s", dir, got)
		}
		if got := a.answer(t, "lockw 1"); got != "ok" {
			t.Errorf("%s: F_SETLKW after the other unlocked: %q", dir, got)
		}
	}
}

// TestLocksInterrupt kills a child that waits for a lock: the kernel
// interrupts the request, and the daemon must answer it, or the child
// could never die.
func TestLocksInterrupt(t *testing.T) {
	mnt := testMount(t)
	p := filepath.Join(mnt, "f")
	f := openRW(t, p)
	if _, err := ofd(f, unix.F_OFD_SETLK, wr, 0, 1); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, p)
	if got := c.do(t, "lockw"); got != "waiting" {
		t.Fatalf("child: %q", got)
	}
	select {
	case l := <-c.out:
		t.Fatalf("child's F_SETLKW answered %q while the lock is held", l)
	case <-time.After(200 * time.Millisecond):
	}
	c.cmd.Process.Kill()
	exited := make(chan error, 1)
	go func() { exited <- c.cmd.Wait() }()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Errorf("child: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the killed child still waits for the lock")
		ofd(f, unix.F_OFD_SETLK, un, 0, 1) // let it go
		<-exited
	}
	if _, err := ofd(openRW(t, p), unix.F_OFD_SETLK, wr, 0, 1); err != unix.EAGAIN {
		t.Errorf("the lock after the child died: %v, want still held (EAGAIN)", err)
	}
}
