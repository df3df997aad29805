package txfs

// Durability on request: Fsync waits for the log, Sync takes a checkpoint.

// Fsync returns when every change to ino made so far is durable.
func (v *Volume) Fsync(ino Ino) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	seq, ok := v.inoSeq[ino]
	if !ok {
		return nil
	}
	return v.waitDurable(seq)
}

// Sync makes everything durable and takes a checkpoint.
func (v *Volume) Sync() error {
	if v.ro {
		return nil
	}
	return v.checkpoint()
}
