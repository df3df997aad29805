package btree

// PendingFree lists the permanent node IDs that are no longer part of the
// tree but stay allocated until the next Flush frees them (and IDs a failed
// Flush allocated for nodes still new). A checker counts them as in use.
func (t *Tree) PendingFree() []NodeID {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]NodeID(nil), t.freed...)
	for _, p := range t.pending {
		out = append(out, p)
	}
	return out
}
