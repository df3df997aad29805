package main

import (
	"sync/atomic"

	"github.com/txfs/txfs/segment"
)

// countingDevice counts the bytes written to and read from a device: the
// write cost measured below the engine, beside its own counters.
type countingDevice struct {
	segment.Device
	written, read atomic.Int64
}

func (d *countingDevice) WriteAt(p []byte, off int64) (int, error) {
	n, err := d.Device.WriteAt(p, off)
	d.written.Add(int64(n))
	return n, err
}

func (d *countingDevice) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Device.ReadAt(p, off)
	d.read.Add(int64(n))
	return n, err
}
