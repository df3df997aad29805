package txfs

import (
	"errors"
	"fmt"

	"github.com/txfs/txfs/segment"
)

// OpenPath opens the volume in an image file or block device. It holds a
// lock on it for as long as the volume is open: exclusive for writing,
// shared for reading, so one writer at most uses an image.
func OpenPath(path string, o Options) (*Volume, error) {
	dev, err := segment.OpenFile(path, o.ReadOnly)
	if err != nil {
		return nil, err
	}
	if err := dev.Lock(!o.ReadOnly); err != nil {
		dev.Close()
		if errors.Is(err, segment.ErrLocked) {
			return nil, fmt.Errorf("%w: %v", ErrBusy, err)
		}
		return nil, err
	}
	v, err := Open(dev, o)
	if err != nil {
		dev.Close()
		return nil, err
	}
	v.closeDev = true
	return v, nil
}
