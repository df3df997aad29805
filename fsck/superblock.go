package fsck

import (
	"fmt"

	"github.com/txfs/txfs/segment"
)

// SuperblockWarnings lists the superblock copies that cannot be read or
// decoded. Each slot holds two copies (version 2) and Open takes the newest
// that decodes, so one damaged copy loses nothing; but it is damage all the
// same, and the checker reports it among the warnings Open found (a torn
// superblock write leaves exactly that; the next checkpoint rewrites the
// slot).
func SuperblockWarnings(dev segment.Device, bs uint32) []string {
	var out []string
	buf := make([]byte, segment.CopyOffset+segment.SuperSize)
	for slot := range 2 {
		off := int64(slot) * int64(bs)
		if _, err := dev.ReadAt(buf, off); err != nil {
			out = append(out, fmt.Sprintf("superblock slot %d cannot be read: %v", slot, err))
			continue
		}
		first, errFirst := segment.DecodeSuperblock(buf)
		_, errSecond := segment.DecodeSuperblock(buf[segment.CopyOffset:])
		switch {
		case errFirst != nil && errSecond != nil:
			out = append(out, fmt.Sprintf("superblock slot %d is damaged: %v", slot, errFirst))
		case errFirst != nil:
			out = append(out, fmt.Sprintf("superblock slot %d: the copy at byte %d is damaged (%v); the copy at byte %d serves",
				slot, off, errFirst, off+segment.CopyOffset))
		case errSecond != nil && first.Version >= 2:
			// Version 1 wrote one copy per slot.
			out = append(out, fmt.Sprintf("superblock slot %d: the copy at byte %d is damaged (%v); the copy at byte %d serves",
				slot, off+segment.CopyOffset, errSecond, off))
		}
	}
	return out
}
