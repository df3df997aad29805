package txfs

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/txfs/txfs/journal"
)

// The checkpointer takes checkpoints when they are due, and wakes the
// writer when the unit being built has waited journal.SealAfter. What
// makes a checkpoint due changes only with the log (a commit, a sealed unit, a
// checkpoint that began or ended) or with time (the seal deadline of the
// current unit, the timed checkpoint, the looks for segments to give
// back), so it sleeps until one of those: an idle volume's checkpointer
// sleeps without a deadline and never takes the volume lock.

// checkpointerPace is how often at most the checkpointer looks again while
// the log keeps changing.
const checkpointerPace = 2 * time.Millisecond

// checkpointerState is what the log shares with the checkpointer.
type checkpointerState struct {
	events uint64        // changes of the log so far; lock held
	kick   chan struct{} // one pending wakeup for the checkpointer
	idle   bool          // asleep with nothing due and no deadline; lock held
	wakes  atomic.Int64  // times it took the volume lock, for tests
}

// logChanged tells the checkpointer that the log changed: something may
// have become due. Lock held.
func (v *Volume) logChanged() {
	v.ckpter.events++
	select {
	case v.ckpter.kick <- struct{}{}:
	default:
	}
	if len(v.log.Free) < v.clean.low && v.clean.kick != nil {
		select {
		case v.clean.kick <- struct{}{}:
		default:
		}
	}
}

// checkpointer runs until the volume is closed or stopped by an error.
func (v *Volume) checkpointer() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	s := checkpointerClock{lastScan: time.Now()}
	v.mu.Lock()
	s.scanned = v.ckpter.events - 1 // look for segments to give back once after Open
	v.mu.Unlock()
	for {
		v.mu.Lock()
		v.ckpter.wakes.Add(1)
		v.ckpter.idle = false
		if v.closed || v.err != nil {
			v.mu.Unlock()
			return
		}
		due, next := v.checkpointDue(&s, time.Now())
		v.ckpter.idle = !due && next.IsZero()
		v.mu.Unlock()
		if due {
			if err := v.checkpoint(); err != nil && !errors.Is(err, ErrClosed) {
				return
			}
			v.mu.Lock()
			if len(v.deferred) > 0 && v.writable() == nil {
				v.retryDeferred() // a failure has stopped the volume
			}
			v.mu.Unlock()
		}
		// Sleep until the log changes or the next deadline. A checkpoint
		// that had nothing to do changed nothing: what made it due stays
		// so until the log changes, and is not looked at again before.
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-v.ckpter.kick:
			time.Sleep(time.Until(s.looked.Add(checkpointerPace)))
		case <-timer.C:
		case <-v.done:
			return
		}
		timer.Stop()
	}
}

// checkpointerClock is the checkpointer's own memory of when it looked.
type checkpointerClock struct {
	looked   time.Time // last look
	lastScan time.Time // last look for segments to give back
	scanned  uint64    // the log's events at that look
}

// checkpointDue says whether a checkpoint is due now, and when something
// may next become due without a change of the log (zero: never). It wakes
// the writer when the current unit has waited journal.SealAfter. Lock held.
func (v *Volume) checkpointDue(s *checkpointerClock, now time.Time) (bool, time.Time) {
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	s.looked = now
	if !v.log.Cur.Empty() {
		if at := v.log.Start.Add(journal.SealAfter); now.Before(at) {
			later(at)
		} else {
			v.wake.Signal()
		}
	}
	// Segments to give back appear only with changes of the log.
	scan := false
	if s.scanned != v.ckpter.events {
		at := s.lastScan.Add(v.spaceScanEvery())
		if scan = !now.Before(at); scan {
			s.lastScan, s.scanned = now, v.ckpter.events
		} else {
			later(at)
		}
	}
	// Checkpoint when the log since the last one is long (recovery time),
	// when dirty metadata grows (memory.go: begin forces one at twice
	// this; on a nearly full volume only then, as each checkpoint spends
	// room), for space (space.go), or after a while with changes.
	due := v.log.SealedBytes >= v.opts.CheckpointBytes || v.dirtyMemory() >= v.mem.dirty/2 && v.roomy(v.ckptCost()) ||
		v.spaceCheckpointDue(scan)
	if v.changes > 0 && v.log.SealedBytes > 0 {
		at := v.lastCkpt.Add(v.opts.CheckpointInterval)
		if !now.Before(at) {
			due = true
		} else {
			later(at)
		}
	}
	return due, next
}
