package txfs

import (
	"errors"

	"github.com/txfs/txfs/journal"
)

// The log head, the sealed units, the writer goroutine and the free
// segments are a journal.Log, guarded by the volume lock like the rest of
// the volume's state (docs/DESIGN.md, "Where the log goes").

// newLog makes the volume's log: its device, its geometry, and what it
// tells the volume (errors, durable units, sealed units). Lock held by
// the log's methods; v.sut may be replaced (recovery), so it is looked up
// on each call.
func (v *Volume) newLog() *journal.Log {
	return journal.NewLog(journal.Config{
		Mu: &v.mu, Changed: v.changed, Wake: v.wake, Dev: v.dev, Geo: v.geo, VolumeID: v.sb.VolumeID(),
		Err:   func() error { return v.err },
		Fail:  v.fail,
		Touch: func(s uint32, seq uint64) error { return v.sut.Touch(s, seq) },
		Durable: func(seq uint64) {
			for ino, s := range v.inoSeq {
				if s <= seq {
					delete(v.inoSeq, ino)
				}
			}
		},
		Sealed:  v.logChanged,
		Warn:    v.warn,
		Flushed: v.metrics.flushed,
	})
}

// waitDurable waits until unit seq is written and flushed. Lock held.
func (v *Volume) waitDurable(seq uint64) error {
	err := v.log.WaitDurable(seq)
	if errors.Is(err, journal.ErrWriterStopped) {
		return ErrClosed
	}
	return err
}
