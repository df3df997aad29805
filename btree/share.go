package btree

import (
	"fmt"
)

// Sharing is how a tree learns that other trees (snapshots) share some of
// its nodes, and how it says it copied one. References are counted lazily
// (Rodeh 2008, as btrfs does): a tree that takes a reference to a root
// shares everything below it without counting anything more, and a node
// is copied on its first change while something else still refers to it;
// the copy then takes a reference to each child (or, in a leaf, to what
// each value refers to) and the original loses the one this tree held.
//
// Mutations go top-down: a node is made the tree's own before it changes,
// its parent first, so a node reached from the tree's own parent counts
// every reference to it in its own count, and Shared can ask that count.
type Sharing interface {
	// Shared reports whether node id, reached from a node this tree owns
	// (or as its root), is referenced by anything else too.
	Shared(id NodeID) (bool, error)
	// Copied is told that this tree replaced node old by a copy with the
	// same items: add a reference to everything r refers to, and drop
	// this tree's reference to old (which stays referenced elsewhere).
	Copied(old NodeID, r NodeRefs) error
}

// NodeRefs is what a node refers to: its children (Level > 0) or its
// items' keys and values (a leaf). The slices are valid during the call
// they are handed to only.
type NodeRefs struct {
	Level int
	Kids  []NodeID
	Keys  []Key
	Vals  [][]byte
}

// SetSharing makes the tree copy nodes s reports shared before it changes
// them. nil (the default) means no node is ever shared.
func (t *Tree) SetSharing(s Sharing) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sharing = s
}

// refsOf lists what n refers to.
func refsOf(n *node) NodeRefs {
	r := NodeRefs{Level: int(n.level)}
	for i := range n.count() {
		if n.leaf() {
			r.Keys = append(r.Keys, n.key(i))
			r.Vals = append(r.Vals, n.val(i))
		} else {
			r.Kids = append(r.Kids, n.kid(i))
		}
	}
	return r
}

// unshare returns n if the tree owns it, or else a new node with the same
// items that the tree owns: the caller points n's parent (or the root) at
// it. A dirty node is always the tree's own: it was made so before it
// changed, and nothing shares what has not been flushed.
func (t *Tree) unshare(n *node) (*node, error) {
	if t.sharing == nil || n.dirty || n.id.isTemp() {
		return n, nil
	}
	shared, err := t.sharing.Shared(n.id)
	if err != nil || !shared {
		return n, err
	}
	if err := t.sharing.Copied(n.id, refsOf(n)); err != nil {
		return nil, fmt.Errorf("btree: copying shared node %d: %w", n.id, err)
	}
	c := &node{level: n.level, items: newItems(n.items, t.blockSize), offs: newOffs(n.offs)}
	t.newNode(c)
	// This tree no longer reaches n, and n's block may be freed by the
	// last tree that does, then name another node.
	t.forget(n)
	return c, nil
}

// forget drops clean node n from the cache.
func (t *Tree) forget(n *node) {
	t.cleanBytes -= int64(n.acct)
	t.removeCached(n)
}

// ownRoot loads the root, made the tree's own.
func (t *Tree) ownRoot() (*node, error) {
	r, err := t.load(t.root, -1)
	if err != nil {
		return nil, err
	}
	c, err := t.unshare(r)
	if err != nil {
		return nil, err
	}
	t.root = c.id
	return c, nil
}

// ownChild loads child i of p, which the tree owns, made the tree's own.
func (t *Tree) ownChild(p *node, i int) (*node, error) {
	c, err := t.child(p, i)
	if err != nil {
		return nil, err
	}
	own, err := t.unshare(c)
	if err != nil || own == c {
		return own, err
	}
	t.markDirty(p)
	p.setKid(i, own.id)
	return own, nil
}

// PathShared reports whether a node on the path from the root to the
// leaf where k is (or would be) is shared: whatever that leaf refers to
// is then shared too, whatever its own count says.
func (t *Tree) PathShared(k Key) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.done()
	if t.sharing == nil || t.root == NilNode {
		return false, nil
	}
	n, err := t.load(t.root, -1)
	for err == nil {
		if !n.dirty && !n.id.isTemp() {
			if shared, err := t.sharing.Shared(n.id); err != nil || shared {
				return shared, err
			}
		}
		if n.leaf() {
			return false, nil
		}
		n, err = t.child(n, max(n.childIndex(k), 0))
	}
	return false, err
}

// SetRoot makes root the tree's root, as if the tree had been opened
// there: every cached node is forgotten. Nothing may be dirty (Flush
// first).
func (t *Tree) SetRoot(root NodeID) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.dirty) > 0 || len(t.freed) > 0 || len(t.pending) > 0 {
		return fmt.Errorf("btree: new root while %d nodes are dirty", len(t.dirty))
	}
	t.forgetAll()
	t.root = root
	return nil
}

// Forget drops node id from the cache if it is there and clean: its
// virtual block was freed by someone else (a snapshot that was the last
// to refer to it), and may name another node later.
func (t *Tree) Forget(id NodeID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.nodes[id]; n != nil && !n.dirty {
		t.forget(n)
	}
}

// DecodeRefs checks the encoded node b (named id, of a tree with nodes of
// blockSize bytes) and lists what it refers to, for a caller that frees a
// tree nobody uses any more without loading it into a Tree.
func DecodeRefs(id NodeID, b []byte, blockSize int) (NodeRefs, error) {
	n, err := decodeNode(id, b, blockSize)
	if err != nil {
		return NodeRefs{}, err
	}
	r := refsOf(n)
	for i, v := range r.Vals {
		r.Vals[i] = append([]byte(nil), v...)
	}
	return r, nil
}
