package txfs

import (
	"fmt"
	"testing"

	"github.com/txfs/txfs/segment"
)

// A 256 MiB volume with the default geometry filled with small files and
// emptied, round after round: after the syncs that follow each emptying,
// no segment but the log head's holds table blocks alone, and statfs shows
// nearly all of the fresh volume free again.
func TestEmptiedVolumeKeepsNoTableSegments(t *testing.T) {
	v, _ := newSmallVolume(t, 256<<20, 0, Options{})
	fresh, _ := v.Statfs()
	for round := 0; round < 3; round++ {
		fillSmallFiles(t, v, round)
		removeAll(t, v, RootIno)
		for i := 0; i < 2; i++ {
			if err := v.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		st, _ := v.Statfs()
		v.mu.Lock()
		sutHolds := map[uint32]bool{}
		err := v.sut.Walk(func(level int, index uint64, p segment.BlockPtr) error {
			s, _ := v.geo.SegmentOf(p.Addr)
			sutHolds[s] = true
			return nil
		})
		var stranded []string
		for s := uint32(0); s < v.geo.Segments && err == nil; s++ {
			var e segment.UsageEntry
			if e, err = v.sut.Get(s); err == nil && s != v.log.CurSeg && s != v.log.NextSeg && e.Live == 0 && (e.Tables > 0 || sutHolds[s]) {
				stranded = append(stranded, fmt.Sprintf("segment %d: %d DAT blocks, usage table blocks %v", s, e.Tables, sutHolds[s]))
			}
		}
		v.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d of %d blocks free after emptying", round, st.Bavail, fresh.Bavail)
		if len(stranded) > 0 {
			t.Fatalf("round %d: segments hold nothing but table blocks after emptying and two syncs: %v", round, stranded)
		}
		if st.Bavail < fresh.Bavail*97/100 {
			t.Fatalf("round %d: %d blocks free after emptying, %d on the fresh volume", round, st.Bavail, fresh.Bavail)
		}
	}
}
