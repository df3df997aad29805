package txfs

import (
	"fmt"
	"io"
	"sync"

	"github.com/txfs/txfs/btree"
	"github.com/txfs/txfs/internal/cache"
)

// SetNodeCache makes the metadata tree's node cache order its clean nodes
// for eviction by the named policy (lru, lfu or s3fifo; "" is the
// default), from now on, on an open volume. The cached nodes stay, dirty
// ones pinned (btree.Tree.SetCachePolicy). An unknown name is ErrInvalid.
func (v *Volume) SetNodeCache(policy string) error {
	if policy == "" {
		policy = cache.Default
	}
	if err := v.tree.SetCachePolicy(policy); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// NodeCachePolicy is the name of the node cache's policy.
func (v *Volume) NodeCachePolicy() string { return v.tree.CachePolicy() }

// TraceNodeCache writes a trace of the node cache to w (the format of
// package internal/cache: every lookup of a node, every node a checkpoint
// leaves clean, every node dropped), until stop, which returns the first
// write error. Tracing costs a buffered write under the tree's lock per
// lookup; off, it costs nothing.
func (v *Volume) TraceNodeCache(w io.Writer) (stop func() error) {
	tw := cache.NewTraceWriter(w)
	v.tree.SetTrace(func(op cache.Op, id btree.NodeID, weight int64) {
		tw.Record(op, uint64(id), weight)
	})
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			v.tree.SetTrace(nil)
			err = tw.Flush()
		})
		return err
	}
}
