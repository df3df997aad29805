package btree

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// refStore counts references the way txfs's DAT does: a node or block is
// freed when its count reaches zero, and a leaf value is the number of a
// data block the leaf refers to.
type refStore struct {
	*memStore
	t      *testing.T
	refs   map[NodeID]int // nodes
	blocks map[uint64]int // data blocks named by leaf values
	next   uint64         // the next data block number
}

func newRefStore(t *testing.T, bs int) *refStore {
	return &refStore{memStore: newMemStore(bs), t: t, refs: map[NodeID]int{}, blocks: map[uint64]int{}, next: 1}
}

func (s *refStore) Shared(id NodeID) (bool, error) {
	if s.refs[id] < 1 {
		return false, fmt.Errorf("node %d reached with count %d", id, s.refs[id])
	}
	return s.refs[id] > 1, nil
}

func (s *refStore) Copied(old NodeID, r NodeRefs) error {
	for _, k := range r.Kids {
		s.refs[k]++
	}
	for _, v := range r.Vals {
		s.blocks[binary.LittleEndian.Uint64(v)]++
	}
	s.refs[old]--
	if s.refs[old] < 1 {
		return fmt.Errorf("node %d copied while not shared", old)
	}
	return nil
}

func (s *refStore) alloc() (NodeID, error) {
	id, err := s.memStore.alloc()
	s.refs[id] = 1
	return id, err
}

// free drops a tree's reference to a node it no longer uses: its own,
// whose children it kept or dropped itself.
func (s *refStore) free(id NodeID) error {
	if s.refs[id]--; s.refs[id] != 0 {
		return fmt.Errorf("node %d dropped with %d references left", id, s.refs[id])
	}
	delete(s.refs, id)
	return s.memStore.free(id)
}

func (s *refStore) flush(tr *Tree) error { return tr.Flush(s.alloc, s.write, s.free) }

// release drops one reference to the subtree of id, as deleting a
// snapshot does, freeing what nothing else refers to.
func (s *refStore) release(id NodeID) {
	if s.refs[id]--; s.refs[id] > 0 {
		return
	}
	r := s.nodeRefs(id)
	for _, k := range r.Kids {
		s.release(k)
	}
	for _, v := range r.Vals {
		s.dropBlock(binary.LittleEndian.Uint64(v))
	}
	delete(s.refs, id)
	if err := s.memStore.free(id); err != nil {
		s.t.Fatal(err)
	}
}

// nodeRefs reads node id and lists what it refers to.
func (s *refStore) nodeRefs(id NodeID) NodeRefs {
	s.t.Helper()
	b, err := s.LoadNode(id)
	if err != nil {
		s.t.Fatal(err)
	}
	r, err := DecodeRefs(id, b, s.blockSize)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

func (s *refStore) newBlock() []byte {
	s.blocks[s.next] = 1
	s.next++
	return binary.LittleEndian.AppendUint64(nil, s.next-1)
}

func (s *refStore) dropBlock(b uint64) {
	if s.blocks[b]--; s.blocks[b] < 0 {
		s.t.Fatalf("block %d freed twice", b)
	}
	if s.blocks[b] == 0 {
		delete(s.blocks, b)
	}
}

// verify counts the references the trees under roots hold, each node
// once however many trees share it, and compares them with the counts.
func (s *refStore) verify(roots []NodeID) {
	s.t.Helper()
	refs, blocks, seen := map[NodeID]int{}, map[uint64]int{}, map[NodeID]bool{}
	var walk func(id NodeID)
	walk = func(id NodeID) {
		refs[id]++
		if seen[id] {
			return
		}
		seen[id] = true
		r := s.nodeRefs(id)
		for _, k := range r.Kids {
			walk(k)
		}
		for _, v := range r.Vals {
			blocks[binary.LittleEndian.Uint64(v)]++
		}
	}
	for _, r := range roots {
		if r != NilNode {
			walk(r)
		}
	}
	for id, n := range s.refs {
		if refs[id] != n {
			s.t.Fatalf("node %d: count %d, referenced %d times", id, n, refs[id])
		}
	}
	for id, n := range refs {
		if s.refs[id] != n {
			s.t.Fatalf("node %d: referenced %d times, count %d", id, n, s.refs[id])
		}
	}
	for b, n := range s.blocks {
		if blocks[b] != n {
			s.t.Fatalf("block %d: count %d, referenced %d times", b, n, blocks[b])
		}
	}
	for b, n := range blocks {
		if s.blocks[b] != n {
			s.t.Fatalf("block %d: referenced %d times, count %d", b, n, s.blocks[b])
		}
	}
	if len(s.alloced) != len(s.refs) {
		s.t.Fatalf("%d nodes allocated, %d counted", len(s.alloced), len(s.refs))
	}
}

// TestSharedNodesAreCopied keeps snapshots of a tree (a reference to a
// flushed root each) while it changes at random: every snapshot keeps its
// items, every count equals the references that exist, and deleting the
// snapshots frees exactly what only they held.
func TestSharedNodesAreCopied(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			const bs = 256
			rng := rand.New(rand.NewPCG(seed, 0))
			s := newRefStore(t, bs)
			live := NewTree(s, NilNode, bs, 1<<20)
			live.SetSharing(s)
			m := model{}
			type snap struct {
				root  NodeID
				items model
			}
			var snaps []snap
			key := func() Key { return Key{Ino: uint64(rng.IntN(400)), Type: 1} }
			roots := func() []NodeID {
				out := []NodeID{live.Root()}
				for _, sn := range snaps {
					out = append(out, sn.root)
				}
				return out
			}
			for round := range 60 {
				for range 1 + rng.IntN(80) {
					k := key()
					if old, ok := m[k]; ok && rng.IntN(3) == 0 {
						if _, err := live.Delete(k); err != nil {
							t.Fatal(err)
						}
						delete(m, k)
						s.dropBlock(binary.LittleEndian.Uint64(old))
						continue
					}
					v := s.newBlock()
					old, had := m[k]
					if err := live.Put(k, v); err != nil {
						t.Fatal(err)
					}
					m[k] = v
					if had {
						s.dropBlock(binary.LittleEndian.Uint64(old))
					}
				}
				if err := s.flush(live); err != nil {
					t.Fatal(err)
				}
				s.verify(roots())
				switch {
				case rng.IntN(3) == 0 && live.Root() != NilNode:
					s.refs[live.Root()]++
					snaps = append(snaps, snap{live.Root(), maps(m)})
					if k := key(); true {
						if shared, err := live.PathShared(k); err != nil || !shared {
							t.Fatalf("round %d: path to %v not shared right after a snapshot: %v", round, k, err)
						}
					}
				case rng.IntN(4) == 0 && len(snaps) > 0:
					i := rng.IntN(len(snaps))
					s.release(snaps[i].root)
					snaps = append(snaps[:i], snaps[i+1:]...)
				}
				for _, sn := range snaps {
					compare(t, NewTree(s, sn.root, bs, 1<<20), sn.items)
				}
				compare(t, live, m)
				s.verify(roots())
			}
			for _, sn := range snaps {
				s.release(sn.root)
			}
			snaps = nil
			s.verify(roots())
			// Only the live tree's nodes are left, and none of them is
			// shared any more.
			for id, n := range s.refs {
				if n != 1 {
					t.Fatalf("node %d has %d references with no snapshot", id, n)
				}
			}
		})
	}
}

func maps(m model) model {
	out := model{}
	for k, v := range m {
		out[k] = v
	}
	return out
}
