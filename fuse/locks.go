package fuse

// The daemon's lock manager. The mount sets EnableLocks, so the kernel
// forwards fcntl and flock locks to the daemon (GETLK, SETLK, SETLKW)
// instead of keeping them itself; this file keeps them, in memory, per
// inode number.
//
// Owners. Every request names its owner with an opaque number (LkIn.Owner,
// a scrambled kernel pointer):
//
//   - classic POSIX locks (F_SETLK): the process's file table, so every
//     descriptor of a process shares it and a process never conflicts with
//     itself;
//   - OFD locks (F_OFD_SETLK): the open file description;
//   - flock(2): the open file description too, flagged FUSE_LK_FLOCK.
//
// Classic and OFD requests look the same and share one namespace, "POSIX"
// here; flock locks are another, as on Linux: a flock never conflicts with
// a POSIX lock.
//
// Release. The kernel keeps no record of forwarded locks, so it never
// unlocks on close by itself:
//
//   - close(2) of any descriptor sends FLUSH with the closing process's
//     owner, and POSIX locks of that owner on the inode go (lockingFS,
//     below, since go-fuse's Flush does not pass the owner on);
//   - the last close of an open file description sends RELEASE, and the
//     OFD and flock locks taken through it go (Node.Release, by file
//     handle). The owner number comes from the address of the kernel's
//     file, which the next open may get before the asynchronous RELEASE
//     of the closed one arrives, so these locks are matched by the go-fuse
//     handle they came through, never by owner number; that is also why
//     the owner that RELEASE sends with FUSE_RELEASE_FLOCK_UNLOCK is not
//     used.
//
// Locks on directories never get here: the kernel forwards only those on
// regular files.
//
// SETLKW waits without holding the table's mutex, and returns EINTR when
// the kernel interrupts the request (the caller got a signal).
//
// Deadlocks. A POSIX SETLKW that would wait for an owner who, through a
// chain of waits, waits for the caller gets EDEADLK, as on Linux
// (posix_locks_deadlock in fs/locks.c): every waiting request records
// the owner of the lock it waits for, the first conflicting one, and a
// new wait follows these records from that owner, at most
// maxDeadlockSteps of them. Since a classic owner is the process's file
// table, this catches two processes that each hold what the other
// wants. Linux leaves OFD locks out of this, because threads that share
// an open file can release what another waits for; the daemon cannot
// tell an OFD request from a classic one (the same message, an owner
// number either way), so it checks both. flock waits are not checked, as
// on Linux.

import (
	"context"
	"slices"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/txfs/txfs"
)

// maxDeadlockSteps bounds the deadlock search: it follows at most
// maxDeadlockSteps+1 waits, as Linux's loop does with
// MAX_DEADLK_ITERATIONS (10). A longer cycle waits until interrupted.
const maxDeadlockSteps = 10

// lockTable holds every lock of one mount. The zero value is empty and
// ready.
type lockTable struct {
	mu     sync.Mutex
	inodes map[txfs.Ino]*inodeLocks
	// posixOwners counts, per owner, the inodes it holds POSIX locks
	// on, so that a FLUSH by a process without locks costs nothing.
	posixOwners map[uint64]int
	// waits holds, per owner, its POSIX requests that wait for another
	// owner's lock: the edges the deadlock search follows.
	waits map[uint64]map[*posixWait]struct{}
}

// posixWait records that a waiting POSIX request of owner waits for a
// lock held by blocker.
type posixWait struct {
	owner, blocker uint64
}

// inodeLocks are the locks of one inode.
type inodeLocks struct {
	posix map[uint64][]lockSpan // by owner; sorted by start, disjoint
	flock map[flockKey]lockSpan
	// wake is closed, and cleared, when a lock is released or weakened.
	// Only waiters make it.
	wake    chan struct{}
	waiters int
	// posixWaits are the records of the POSIX requests waiting here.
	// They go as soon as a POSIX lock here is released or weakened: the
	// waiters are woken then, and may not wait for the same owner again.
	posixWaits map[*posixWait]struct{}
}

// lockSpan is a locked byte range, both ends included.
type lockSpan struct {
	start, end uint64
	typ        uint32 // F_RDLCK or F_WRLCK
	pid        uint32
	// handle is the open file the lock was taken through, so that
	// RELEASE can drop OFD locks without knowing their owner.
	handle any
}

// flockKey is a flock holder: the owner is the open file, and the handle
// tells a reused owner number apart from the file that had it before.
type flockKey struct {
	owner  uint64
	handle any
}

func (s *lockSpan) overlaps(start, end uint64) bool {
	return s.start <= end && start <= s.end
}

// conflicts reports whether locks of types a and b on overlapping ranges
// of different owners exclude each other: all but two read locks do.
func conflicts(a, b uint32) bool {
	return a == syscall.F_WRLCK || b == syscall.F_WRLCK
}

// checkLock rejects what the kernel never sends.
func checkLock(lk *fuse.FileLock) syscall.Errno {
	switch lk.Typ {
	case syscall.F_RDLCK, syscall.F_WRLCK, syscall.F_UNLCK:
	default:
		return syscall.EINVAL
	}
	if lk.Start > lk.End {
		return syscall.EINVAL
	}
	return 0
}

// inode returns the locks of ino, made if missing. Callers hold t.mu and
// end with tidy.
func (t *lockTable) inode(ino txfs.Ino) *inodeLocks {
	if il := t.inodes[ino]; il != nil {
		return il
	}
	if t.inodes == nil {
		t.inodes = make(map[txfs.Ino]*inodeLocks)
		t.posixOwners = make(map[uint64]int)
	}
	il := &inodeLocks{posix: make(map[uint64][]lockSpan), flock: make(map[flockKey]lockSpan)}
	t.inodes[ino] = il
	return il
}

// tidy forgets il once nothing holds or waits for a lock on it.
func (t *lockTable) tidy(ino txfs.Ino, il *inodeLocks) {
	if len(il.posix) == 0 && len(il.flock) == 0 && il.waiters == 0 {
		delete(t.inodes, ino)
	}
}

// wakeAll lets every waiter on il try again.
func (il *inodeLocks) wakeAll() {
	if il.wake != nil {
		close(il.wake)
		il.wake = nil
	}
}

// wakePosix lets every waiter on il try again after a POSIX lock there
// was released or weakened, and forgets what the POSIX waiters waited
// for: until they find out again, nobody can be sure they still wait,
// and a deadlock search must not count them.
func (t *lockTable) wakePosix(il *inodeLocks) {
	for w := range il.posixWaits {
		t.dropWait(il, w)
	}
	il.wakeAll()
}

// addWait records that w's request waits on il.
func (t *lockTable) addWait(il *inodeLocks, w *posixWait) {
	if il.posixWaits == nil {
		il.posixWaits = make(map[*posixWait]struct{})
	}
	il.posixWaits[w] = struct{}{}
	if t.waits == nil {
		t.waits = make(map[uint64]map[*posixWait]struct{})
	}
	if t.waits[w.owner] == nil {
		t.waits[w.owner] = make(map[*posixWait]struct{})
	}
	t.waits[w.owner][w] = struct{}{}
}

// dropWait forgets w, if it is recorded.
func (t *lockTable) dropWait(il *inodeLocks, w *posixWait) {
	if w == nil {
		return
	}
	delete(il.posixWaits, w)
	if ws := t.waits[w.owner]; ws != nil {
		delete(ws, w)
		if len(ws) == 0 {
			delete(t.waits, w.owner)
		}
	}
}

// deadlocks reports whether owner would wait for itself if it waited for
// a lock of blocker: whether blocker waits for owner through a chain of
// recorded waits (posix_locks_deadlock in Linux).
func (t *lockTable) deadlocks(owner, blocker uint64) bool {
	if len(t.waits) == 0 {
		return false
	}
	next := []uint64{blocker}
	seen := map[uint64]bool{blocker: true}
	for step := 0; step <= maxDeadlockSteps && len(next) > 0; step++ {
		owners := next
		next = nil
		for _, o := range owners {
			for w := range t.waits[o] {
				if w.blocker == owner {
					return true
				}
				if !seen[w.blocker] {
					seen[w.blocker] = true
					next = append(next, w.blocker)
				}
			}
		}
	}
	return false
}

// setPosixSpans stores the spans of owner on il, keeping posixOwners.
func (t *lockTable) setPosixSpans(il *inodeLocks, owner uint64, spans []lockSpan) {
	_, had := il.posix[owner]
	switch {
	case len(spans) > 0:
		il.posix[owner] = spans
		if !had {
			t.posixOwners[owner]++
		}
	case had:
		delete(il.posix, owner)
		if t.posixOwners[owner]--; t.posixOwners[owner] == 0 {
			delete(t.posixOwners, owner)
		}
	}
}

// getlk answers F_GETLK: the first lock (lowest start, then lowest owner)
// that conflicts with lk, or lk with type F_UNLCK.
func (t *lockTable) getlk(ino txfs.Ino, owner uint64, lk *fuse.FileLock, flags uint32, out *fuse.FileLock) syscall.Errno {
	if errno := checkLock(lk); errno != 0 || lk.Typ == syscall.F_UNLCK {
		return syscall.EINVAL
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	*out = *lk
	out.Typ = syscall.F_UNLCK
	il := t.inodes[ino]
	if il == nil {
		return 0
	}
	var s lockSpan
	var ok bool
	if flags&fuse.FUSE_LK_FLOCK != 0 {
		s, ok = il.flockConflict(owner, lk.Typ)
	} else {
		s, _, ok = il.posixConflict(owner, lk)
	}
	if ok {
		*out = fuse.FileLock{Start: s.start, End: s.end, Typ: s.typ, Pid: s.pid}
	}
	return 0
}

// posixConflict returns the first lock of another owner that excludes lk,
// and that owner.
func (il *inodeLocks) posixConflict(owner uint64, lk *fuse.FileLock) (lockSpan, uint64, bool) {
	var first lockSpan
	var firstOwner uint64
	found := false
	for o, spans := range il.posix {
		if o == owner {
			continue
		}
		for _, s := range spans {
			if s.start > lk.End {
				break
			}
			if !s.overlaps(lk.Start, lk.End) || !conflicts(s.typ, lk.Typ) {
				continue
			}
			if !found || s.start < first.start || (s.start == first.start && o < firstOwner) {
				first, firstOwner, found = s, o, true
			}
			break // the owner's later spans start later
		}
	}
	return first, firstOwner, found
}

// flockConflict returns a flock of another owner that excludes typ.
func (il *inodeLocks) flockConflict(owner uint64, typ uint32) (lockSpan, bool) {
	for k, s := range il.flock {
		if k.owner != owner && conflicts(s.typ, typ) {
			return s, true
		}
	}
	return lockSpan{}, false
}

// setlk answers F_SETLK (wait false) and F_SETLKW (wait true) for POSIX
// and flock locks alike. handle is the open file the request came
// through.
func (t *lockTable) setlk(ctx context.Context, ino txfs.Ino, handle any, owner uint64, lk *fuse.FileLock, flags uint32, wait bool) syscall.Errno {
	if errno := checkLock(lk); errno != 0 {
		return errno
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	il := t.inode(ino)
	posix := flags&fuse.FUSE_LK_FLOCK == 0
	var w *posixWait // recorded while this POSIX request waits
	for {
		var granted bool
		var blocker uint64
		if posix {
			granted, blocker = t.setPosix(il, owner, handle, lk)
		} else {
			granted = il.setFlock(flockKey{owner, handle}, lk)
		}
		if granted || !wait {
			t.tidy(ino, il)
			if !granted {
				return syscall.EAGAIN
			}
			return 0
		}
		if posix {
			if t.deadlocks(owner, blocker) {
				t.tidy(ino, il)
				return syscall.EDEADLK
			}
			w = &posixWait{owner: owner, blocker: blocker}
			t.addWait(il, w)
		}
		if il.wake == nil {
			il.wake = make(chan struct{})
		}
		wake := il.wake
		il.waiters++
		t.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
		}
		t.mu.Lock()
		il.waiters--
		t.dropWait(il, w) // unless a release dropped it already
		if ctx.Err() != nil {
			t.tidy(ino, il)
			return syscall.EINTR
		}
	}
}

// setFlock sets, converts or removes the flock of k, and reports false if
// another owner's lock is in the way.
func (il *inodeLocks) setFlock(k flockKey, lk *fuse.FileLock) bool {
	if cur, ok := il.flock[k]; ok {
		if cur.typ == lk.Typ {
			return true
		}
		// A conversion drops the old lock first, as Linux does: two
		// holders of shared locks that both ask for an exclusive one
		// then do not wait for each other forever.
		delete(il.flock, k)
		il.wakeAll()
	}
	if lk.Typ == syscall.F_UNLCK {
		return true
	}
	if _, ok := il.flockConflict(k.owner, lk.Typ); ok {
		return false
	}
	il.flock[k] = lockSpan{start: lk.Start, end: lk.End, typ: lk.Typ, pid: lk.Pid, handle: k.handle}
	return true
}

// setPosix applies lk for owner unless another owner's lock is in the
// way, and reports whether it did, or else the owner of the first lock in
// the way.
func (t *lockTable) setPosix(il *inodeLocks, owner uint64, handle any, lk *fuse.FileLock) (granted bool, blocker uint64) {
	if lk.Typ != syscall.F_UNLCK {
		if _, o, ok := il.posixConflict(owner, lk); ok {
			return false, o
		}
	}
	spans, released := applyPosix(il.posix[owner], lk, handle)
	t.setPosixSpans(il, owner, spans)
	if released {
		t.wakePosix(il)
	}
	return true, 0
}

// applyPosix returns the spans of one owner after lk: lk's range takes
// lk's type (or is unlocked), the parts of older spans outside it stay,
// and spans of the same type and handle that overlap or touch it merge
// with it. released reports whether any range became unlocked or changed
// from write to read, which may let a waiter in.
func applyPosix(spans []lockSpan, lk *fuse.FileLock, handle any) (out []lockSpan, released bool) {
	lock := lk.Typ != syscall.F_UNLCK
	start, end := lk.Start, lk.End
	out = make([]lockSpan, 0, len(spans)+2)
	for _, s := range spans {
		same := lock && s.typ == lk.Typ && s.handle == handle
		switch {
		case s.end < lk.Start && !(same && s.end+1 == lk.Start):
			out = append(out, s)
		case s.start > lk.End && !(same && lk.End+1 == s.start):
			out = append(out, s)
		case same:
			start, end = min(start, s.start), max(end, s.end)
		default:
			// Overlapping, of another type or handle: keep what
			// lies outside lk.
			if lk.Typ != syscall.F_WRLCK {
				released = true
			}
			if s.start < lk.Start {
				left := s
				left.end = lk.Start - 1
				out = append(out, left)
			}
			if s.end > lk.End {
				right := s
				right.start = lk.End + 1
				out = append(out, right)
			}
		}
	}
	if lock {
		out = append(out, lockSpan{start: start, end: end, typ: lk.Typ, pid: lk.Pid, handle: handle})
	}
	slices.SortFunc(out, func(a, b lockSpan) int {
		if a.start < b.start {
			return -1
		}
		if a.start > b.start {
			return 1
		}
		return 0
	})
	return out, released
}

// hasPosix reports whether owner holds POSIX locks anywhere.
func (t *lockTable) hasPosix(owner uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.posixOwners[owner] > 0
}

// releaseOwner drops every POSIX lock of owner on ino: a process closed
// a descriptor of the file.
func (t *lockTable) releaseOwner(ino txfs.Ino, owner uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	il := t.inodes[ino]
	if il == nil {
		return
	}
	if _, ok := il.posix[owner]; ok {
		t.setPosixSpans(il, owner, nil)
		t.wakePosix(il)
	}
	t.tidy(ino, il)
}

// releaseHandle drops the locks taken through handle, the open file of
// ino that is going away: its OFD locks and its flock. Classic POSIX
// locks taken through it are gone already: every process that had the
// file open flushed when it closed it.
func (t *lockTable) releaseHandle(ino txfs.Ino, handle any) {
	if handle == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	il := t.inodes[ino]
	if il == nil {
		return
	}
	changed := false
	for owner, spans := range il.posix {
		kept := slices.DeleteFunc(slices.Clone(spans), func(s lockSpan) bool { return s.handle == handle })
		if len(kept) != len(spans) {
			t.setPosixSpans(il, owner, kept)
			changed = true
		}
	}
	for k := range il.flock {
		if k.handle == handle {
			delete(il.flock, k)
			changed = true
		}
	}
	if changed {
		t.wakePosix(il)
	}
	t.tidy(ino, il)
}

// lockingFS is the raw filesystem go-fuse builds from the node tree, plus
// what go-fuse's node API cannot do: FLUSH carries the lock owner of the
// closing process, which fs.NodeFlusher does not get.
type lockingFS struct {
	fuse.RawFileSystem
	locks *lockTable
}

// Flush drops the POSIX locks of the closing process on the file, as
// close(2) does on a local filesystem, then flushes.
func (l *lockingFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	if l.locks.hasPosix(in.LockOwner) {
		// The request names go-fuse's node ID, not the inode number
		// the table uses; GETATTR answers with the latter.
		var out fuse.AttrOut
		ga := fuse.GetAttrIn{InHeader: in.InHeader}
		if st := l.RawFileSystem.GetAttr(cancel, &ga, &out); st.Ok() {
			l.locks.releaseOwner(out.Ino, in.LockOwner)
		}
	}
	return l.RawFileSystem.Flush(cancel, in)
}
