package txfs

import "github.com/txfs/txfs/segment"

// The memory budget. Options.CacheBytes bounds what a volume keeps in
// memory beyond a fixed overhead (docs/DESIGN.md, "Caches and memory"),
// counted as memory, not as bytes on disk, in five shares:
//
//   - the metadata tree's nodes, clean and dirty: 1/2;
//   - clean DAT blocks, leaves and interior nodes: 1/8;
//   - dirty metadata (tree nodes, DAT and usage table blocks): 1/8. When
//     it reaches its share the next transaction takes a checkpoint first,
//     and the checkpointer starts one at half of it;
//   - the units of that checkpoint, which encode that metadata in at most
//     as many bytes: 1/8;
//   - sealed units waiting for the device, counted by the capacity of their
//     buffers: 1/8. A writer waits while they take more.
//
// The dirty tree nodes count in the tree's share and in the dirty share,
// so the shares add up to the whole budget when the dirty metadata is all
// DAT and usage blocks, and to less otherwise.
type budget struct {
	tree, tables, dirty, queue int64
}

// DefaultCacheBytes is the budget when Options.CacheBytes is 0, and
// MinCacheBytes the smallest: below it a checkpoint would leave nearly
// its share of dirty metadata behind (the usage table and the DAT entries
// of the nodes it freed) and the next would follow at once.
const (
	DefaultCacheBytes = 64 << 20
	MinCacheBytes     = 4 << 20
)

func newBudget(total int64) budget {
	total = max(total, MinCacheBytes)
	return budget{tree: total / 2, tables: total / 8, dirty: total / 8, queue: total / 8}
}

// dirtyMemory is what the metadata changed since the last checkpoint
// costs in memory. Lock held.
func (v *Volume) dirtyMemory() int64 {
	return v.tree.DirtyBytes() + v.dat.DirtyMemory() + v.sut.DirtyMemory()
}

// encodeBlock is segment.EncodeBlock into a buffer of the volume's: the
// stored bytes are valid until the next call. Lock held.
func (v *Volume) encodeBlock(raw []byte, compress bool) ([]byte, uint8) {
	if len(v.packed) != v.bs {
		v.packed = make([]byte, v.bs)
	}
	return segment.EncodeBlock(raw, v.packed, compress)
}

// relieveMemory takes a checkpoint when the dirty metadata has reached its
// share of the budget: until a checkpoint writes it, it stays in memory.
// Called by begin, which may release the lock between the transactions of
// an operation. Lock held, released while the checkpoint runs.
func (v *Volume) relieveMemory() error {
	if v.changes == 0 || v.dirtyMemory() < v.mem.dirty {
		return nil
	}
	v.mu.Unlock()
	err := v.checkpoint()
	v.mu.Lock()
	if err != nil {
		return err
	}
	return v.writable()
}
