package segment

import (
	"math/rand"
	"testing"
)

// TestUnitBufferFitsUnit: a sealed unit's buffer is at most half as long again
// as the unit (or 8 KiB), whatever its size, so that the queue of sealed
// units, which counts their capacity, bounds their memory.
func TestUnitBufferFitsUnit(t *testing.T) {
	b := make([]byte, 4096)
	rand.New(rand.NewSource(1)).Read(b) // stored raw
	for _, blocks := range []int{0, 1, 3, 40, 300, 900} {
		for _, reserve := range []bool{false, true} {
			u := NewUnitBuilder(UnitPlace{Addr: 8192, Split: 8 << 20}, UnitOps, 4096, 4<<20)
			if reserve {
				u.Reserve(blocks * len(b))
			}
			for i := range blocks {
				u.AddBlock(SummaryEntry{Kind: SumData, ID: uint64(i + 1), Sum: Checksum(b)}, b)
			}
			u.AppendRecords(make([]byte, 100))
			buf, _ := u.Seal(1, 2, 3, 0)
			if _, err := DecodeUnit(buf, UnitPlace{Addr: 8192, Split: 8 << 20}, 4<<20); err != nil {
				t.Fatal(err)
			}
			if cap(buf) > max(len(buf)*3/2, 8<<10) {
				t.Errorf("%d blocks (reserved %v): a unit of %d bytes in a buffer of %d", blocks, reserve, len(buf), cap(buf))
			}
			ReleaseUnitBuffer(buf)
		}
	}
}
