package segment

import (
	"errors"
	"io"
)

// HasSignature reports whether dev bears any mark that txfs wrote: the
// superblock magic in either copy of slot 0, or of slot 1 at any legal
// block size, or a
// log unit's magic at the start of segment 0 (where mkfs writes the first
// unit) at any legal block size. Checksums are not looked at: a volume
// whose superblocks are both damaged still has its log, and is a damaged
// txfs volume; a device with none of these marks was never one. Errors
// are read errors other than reading past the end.
func HasSignature(dev Device) (bool, error) {
	at := func(off int64, magic string) (bool, error) {
		b := make([]byte, len(magic))
		n, err := dev.ReadAt(b, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
		return n == len(b) && string(b) == magic, nil
	}
	for _, off := range []int64{0, CopyOffset} {
		if ok, err := at(off, SuperMagic); ok || err != nil {
			return ok, err
		}
	}
	for bs := int64(MinBlockSize); bs <= MaxBlockSize; bs *= 2 {
		for _, off := range []int64{bs, bs + CopyOffset} {
			if ok, err := at(off, SuperMagic); ok || err != nil {
				return ok, err
			}
		}
		if ok, err := at(2*bs, UnitMagic); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}
