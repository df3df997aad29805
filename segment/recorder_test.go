package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
)

// refImage computes naively what ImageAt(k, v) must return: base with every
// write up to the last sync applied, then the pending writes v keeps.
func refImage(base []byte, events []Event, k int, v Variant) []byte {
	img := append([]byte(nil), base...)
	last := -1
	for i := 0; i <= k; i++ {
		if events[i].Kind == EventSync {
			last = i
		}
	}
	for i := 0; i <= last; i++ {
		if e := events[i]; e.Kind == EventWrite {
			copy(img[e.Off:], e.Data)
		}
	}
	lost := map[int]bool{}
	for _, p := range v.Lost {
		lost[p] = true
	}
	pos := 0
	for i := last + 1; i <= k; i++ {
		e := events[i]
		if e.Kind != EventWrite {
			continue
		}
		switch {
		case lost[pos]:
		case v.TornLen > 0 && v.Torn == pos:
			copy(img[e.Off:], e.Data[:v.TornLen])
		default:
			copy(img[e.Off:], e.Data)
		}
		pos++
	}
	return img
}

// recordRandom makes a base device with some durable content, wraps a copy
// of it in a RecordingDevice and issues n random writes, syncs and marks.
func recordRandom(t *testing.T, seed int64, size int64, n int) (base *MemDevice, rec *RecordingDevice) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	base = NewMemDevice(size)
	base.WriteAt(devPattern(99, int(size/2)), size/4)
	base.Sync()
	base.WriteAt(devPattern(98, 1000), 10) // pending at the start: counts as durable
	rec = NewRecordingDevice(base.Snapshot())
	for i := 0; i < n; i++ {
		switch r := rng.Intn(10); {
		case r < 7:
			l := 1 + rng.Intn(3*memSectorSize+100)
			if rng.Intn(3) == 0 {
				l = 1 + rng.Intn(5*memPageSize)
			}
			off := rng.Int63n(size - int64(l))
			if rng.Intn(2) == 0 {
				off -= off % memSectorSize
			}
			if _, err := rec.WriteAt(devPattern(i, l), off); err != nil {
				t.Fatal(err)
			}
		case r < 9:
			if err := rec.Sync(); err != nil {
				t.Fatal(err)
			}
		default:
			rec.Mark(fmt.Sprint("m", i))
		}
	}
	return base, rec
}

func TestRecordingDeviceRecords(t *testing.T) {
	mem := NewMemDevice(64 << 10)
	rec := NewRecordingDevice(mem)
	if rec.Size() != 64<<10 || rec.Inner() != mem {
		t.Fatalf("Size or Inner wrong")
	}
	buf := devPattern(1, 3000)
	if n, err := rec.WriteAt(buf, 100); n != 3000 || err != nil {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	orig := append([]byte(nil), buf...)
	buf[0]++ // the record must hold a copy
	if i := rec.Mark("one"); i != 1 {
		t.Fatalf("Mark returned %d, want 1", i)
	}
	if err := rec.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.WriteAt(devFill(7, 20), 64<<10-10); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("write past the end: %v", err)
	}
	rec.WriteAt(devFill(5, 10), 0)
	got := make([]byte, 3000)
	if _, err := rec.ReadAt(got, 100); err != nil || !bytes.Equal(got, orig) {
		t.Fatalf("read through the recorder: %v", err)
	}
	ev := rec.Events()
	kinds := []EventKind{EventWrite, EventMark, EventSync, EventWrite}
	if len(ev) != len(kinds) || rec.Len() != len(kinds) {
		t.Fatalf("events %v, want kinds %v", ev, kinds)
	}
	for i, k := range kinds {
		if ev[i].Kind != k {
			t.Fatalf("event %d is %v, want kind %d", i, ev[i], k)
		}
	}
	if ev[0].Off != 100 || !bytes.Equal(ev[0].Data, orig) || ev[1].Label != "one" || ev[3].Off != 0 || len(ev[3].Data) != 10 {
		t.Fatalf("events recorded wrong: %v", ev)
	}
	if s := ev[0].String() + ev[1].String() + ev[2].String(); s != "write 3000 bytes at 100mark onesync" {
		t.Fatalf("String: %q", s)
	}
	// Events is a copy: later events do not show in it.
	rec.Mark("two")
	if len(ev) != 4 || len(rec.Events()) != 5 {
		t.Fatalf("Events is not a snapshot")
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := mem.ReadAt(got, 0); err == nil {
		t.Fatalf("Close did not close the inner device")
	}
}

// TestRecordingDeviceConcurrent: writers and markers at once. Each
// goroutine's events keep their order and the record's order is the order
// the inner device saw: replaying the record gives the device's contents.
func TestRecordingDeviceConcurrent(t *testing.T) {
	mem := NewMemDevice(1 << 20)
	base := mem.Snapshot()
	rec := NewRecordingDevice(mem)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				// Overlapping writes, so the order matters for the result.
				rec.WriteAt(devFill(byte(g*50+i%50), 700), int64((i*131)%4000))
				if i%10 == 0 {
					rec.Sync()
				}
				rec.Mark(fmt.Sprintf("%d/%d", g, i))
			}
		}()
	}
	wg.Wait()
	ev := rec.Events()
	next := map[int]int{}
	writes := 0
	for _, e := range ev {
		switch e.Kind {
		case EventMark:
			var g, i int
			fmt.Sscanf(e.Label, "%d/%d", &g, &i)
			if next[g] != i {
				t.Fatalf("goroutine %d: mark %d after %d", g, i, next[g]-1)
			}
			next[g]++
		case EventWrite:
			writes++
		}
	}
	if writes != 800 {
		t.Fatalf("%d writes recorded, want 800", writes)
	}
	b := NewImageBuilder(base, ev)
	if got := b.ImageAt(len(ev) - 1).Bytes(); !bytes.Equal(got, mem.Bytes()) {
		t.Fatalf("replaying the record does not give the device's contents")
	}
}

func TestImageBuilderPrefixes(t *testing.T) {
	base, rec := recordRandom(t, 1, 256<<10, 300)
	ev := rec.Events()
	baseBytes := base.Bytes()
	b := NewImageBuilder(base, ev)
	if got := b.ImageAt(-1).Bytes(); !bytes.Equal(got, baseBytes) {
		t.Fatalf("image before the first event is not the base")
	}
	if got := b.ImageAt(len(ev) - 1).Bytes(); !bytes.Equal(got, rec.Inner().(*MemDevice).Bytes()) {
		t.Fatalf("image after the last event is not what the device holds")
	}
	// Every crash point, in order and then in random order (the cursor
	// must go back correctly).
	order := make([]int, len(ev))
	for i := range order {
		order[i] = i
	}
	check := func(k int) {
		t.Helper()
		img := b.ImageAt(k)
		if img.PendingWrites() != 0 {
			t.Fatalf("image %d has pending writes", k)
		}
		if !bytes.Equal(img.Bytes(), refImage(baseBytes, ev, k, Variant{})) {
			t.Fatalf("image after event %d (%v) differs from the reference", k, ev[k])
		}
	}
	for _, k := range order {
		check(k)
	}
	rand.New(rand.NewSource(2)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, k := range order[:60] {
		check(k)
	}
	// The same from bytes.
	b2 := NewImageBuilderFromBytes(baseBytes, ev)
	for _, k := range []int{-1, 0, len(ev) / 2, len(ev) - 1} {
		if !bytes.Equal(b2.ImageAt(k).Bytes(), refImage(baseBytes, ev, k, Variant{})) {
			t.Fatalf("builder from bytes: image %d differs", k)
		}
	}
}

func TestImageBuilderPending(t *testing.T) {
	rec := NewRecordingDevice(NewMemDevice(64 << 10))
	rec.WriteAt([]byte{1}, 0) // 0
	rec.Sync()                // 1
	rec.WriteAt([]byte{2}, 1) // 2
	rec.Mark("x")             // 3
	rec.WriteAt([]byte{3}, 2) // 4
	rec.Sync()                // 5
	rec.Mark("y")             // 6
	b := NewImageBuilderFromBytes(make([]byte, 64<<10), rec.Events())
	want := map[int][]int{-1: nil, 0: {0}, 1: nil, 2: {2}, 3: {2}, 4: {2, 4}, 5: nil, 6: nil}
	for k, w := range want {
		if got := b.Pending(k); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("Pending(%d) = %v, want %v", k, got, w)
		}
	}
	if b.LastSync(4) != 1 || b.LastSync(5) != 5 || b.LastSync(0) != -1 || b.LastSync(-1) != -1 {
		t.Errorf("LastSync wrong")
	}
	// The write before the sync survives every variant.
	for _, v := range b.ReorderVariants(4, 10, 1) {
		img := b.ImageAt(4, v).Bytes()
		if img[0] != 1 {
			t.Fatalf("variant %v lost a synced write", v)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("ImageAt out of range did not panic")
			}
		}()
		b.ImageAt(7)
	}()
}

func TestImageBuilderTorn(t *testing.T) {
	rec := NewRecordingDevice(NewMemDevice(64 << 10))
	rec.WriteAt(devPattern(1, 4096), 4096)
	rec.Sync()
	rec.WriteAt(devPattern(2, 100), 0)    // 2: one sector or less: no tear
	rec.WriteAt(devPattern(3, 5000), 700) // 3: unaligned
	rec.WriteAt(devPattern(4, 8192), 8192)
	rec.Mark("m")
	ev := rec.Events()
	base := make([]byte, 64<<10)
	b := NewImageBuilderFromBytes(base, ev)
	if v := b.TornVariants(2, 4); len(v) != 0 {
		t.Fatalf("torn variants of a short write: %v", v)
	}
	if v := b.TornVariants(1, 4); len(v) != 0 {
		t.Fatalf("torn variants of a sync: %v", v)
	}
	if v := b.TornVariants(5, 4); len(v) != 0 {
		t.Fatalf("torn variants of a mark: %v", v)
	}
	for _, k := range []int{3, 4} {
		e := ev[k]
		all := sectorCuts(e.Off, len(e.Data))
		vs := b.TornVariants(k, 4)
		if len(vs) != min(4, len(all)) || vs[0].TornLen != all[0] || vs[len(vs)-1].TornLen != all[len(all)-1] {
			t.Fatalf("event %d: torn variants %v of cuts %v", k, vs, all)
		}
		for _, v := range vs {
			if v.TornLen <= 0 || v.TornLen >= len(e.Data) || (e.Off+int64(v.TornLen))%memSectorSize != 0 {
				t.Fatalf("event %d: cut %d not at a sector boundary inside the write", k, v.TornLen)
			}
			if v.Torn != len(b.Pending(k))-1 {
				t.Fatalf("event %d: tear of pending write %d, want the last", k, v.Torn)
			}
			got := b.ImageAt(k, v).Bytes()
			if !bytes.Equal(got, refImage(base, ev, k, v)) {
				t.Fatalf("event %d, %v: image differs from the reference", k, v)
			}
			if bytes.Equal(got, refImage(base, ev, k, Variant{})) || bytes.Equal(got, refImage(base, ev, k-1, Variant{})) {
				t.Fatalf("event %d, %v: a torn image equals a whole one", k, v)
			}
		}
	}
	if c := sectorCuts(700, 5000); c[0] != 324 || c[len(c)-1] != 4932 {
		t.Fatalf("sectorCuts(700, 5000) = %v", c)
	}
	if c := sectorCuts(1024, 1024); len(c) != 1 || c[0] != 512 {
		t.Fatalf("sectorCuts(1024, 1024) = %v", c)
	}
}

func TestImageBuilderReorder(t *testing.T) {
	rec := NewRecordingDevice(NewMemDevice(64 << 10))
	rec.WriteAt(devFill(1, 10), 0)
	rec.Sync()
	for i := 0; i < 3; i++ {
		rec.WriteAt(devFill(byte(10+i), 10), int64(100*(i+1)))
	}
	b := NewImageBuilderFromBytes(make([]byte, 64<<10), rec.Events())
	// Three pending writes: 8 subsets, of which 4 leave a prefix.
	vs := b.ReorderVariants(4, 100, 1)
	var got []string
	for _, v := range vs {
		got = append(got, fmt.Sprint(v.Lost))
	}
	if want := "[[0] [1] [0 1] [0 2]]"; fmt.Sprint(got) != want {
		t.Fatalf("subsets %v, want %s", got, want)
	}
	for _, v := range vs {
		img := b.ImageAt(4, v).Bytes()
		if img[0] != 1 {
			t.Fatalf("%v: the synced write was lost", v)
		}
		for i := 0; i < 3; i++ {
			lost := false
			for _, p := range v.Lost {
				lost = lost || p == i
			}
			if (img[100*(i+1)] == 0) != lost {
				t.Fatalf("%v: write %d lost=%v in the image", v, i, img[100*(i+1)] == 0)
			}
		}
	}
	if vs := b.ReorderVariants(4, 2, 1); len(vs) != 2 {
		t.Fatalf("max not respected: %v", vs)
	}
	if vs := b.ReorderVariants(2, 10, 1); len(vs) != 0 {
		t.Fatalf("one pending write has no reordering: %v", vs)
	}

	// Many pending writes: a seeded sample, bounded, distinct, reproducible.
	base, rec2 := recordRandom(t, 3, 256<<10, 0)
	for i := 0; i < 40; i++ {
		rec2.WriteAt(devPattern(i, 1500), int64(i*2000))
	}
	ev := rec2.Events()
	baseBytes := base.Bytes()
	b2 := NewImageBuilder(base, ev)
	k := len(ev) - 1
	s1, s2, s3 := b2.ReorderVariants(k, 30, 7), b2.ReorderVariants(k, 30, 7), b2.ReorderVariants(k, 30, 8)
	if len(s1) != 30 || fmt.Sprint(s1) != fmt.Sprint(s2) || fmt.Sprint(s1) == fmt.Sprint(s3) {
		t.Fatalf("sample not bounded, reproducible or seeded")
	}
	seen := map[string]bool{}
	tears := 0
	for _, v := range s1 {
		if seen[v.String()] {
			t.Fatalf("duplicate variant %v", v)
		}
		seen[v.String()] = true
		lost := make([]bool, 40)
		for _, p := range v.Lost {
			lost[p] = true
		}
		if isLostSuffixBools(lost) {
			t.Fatalf("variant %v only loses a suffix", v)
		}
		if v.TornLen > 0 {
			tears++
			if lost[v.Torn] {
				t.Fatalf("variant %v tears a lost write", v)
			}
		}
		if !bytes.Equal(b2.ImageAt(k, v).Bytes(), refImage(baseBytes, ev, k, v)) {
			t.Fatalf("variant %v: image differs from the reference", v)
		}
	}
	if tears == 0 {
		t.Fatalf("no sampled variant tears a write")
	}
}

// TestImageBuilderImagesIndependent: an image is a device of its own;
// writing to it changes neither the builder's later images nor the base.
func TestImageBuilderImagesIndependent(t *testing.T) {
	base, rec := recordRandom(t, 4, 128<<10, 100)
	ev := rec.Events()
	baseBytes := base.Bytes()
	b := NewImageBuilder(base, ev)
	k := len(ev) / 2
	want := refImage(baseBytes, ev, k, Variant{})
	img := b.ImageAt(k)
	img.WriteAt(devFill(0xAA, 64<<10), 0)
	img.Sync()
	if !bytes.Equal(b.ImageAt(k).Bytes(), want) {
		t.Fatalf("writing to an image changed the next one")
	}
	if !bytes.Equal(base.Bytes(), baseBytes) {
		t.Fatalf("the base changed")
	}
	// Builders sharing the base and the events work in parallel.
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bg := NewImageBuilder(base, ev)
			for k := g; k < len(ev); k += 7 {
				if !bytes.Equal(bg.ImageAt(k).Bytes(), refImage(baseBytes, ev, k, Variant{})) {
					t.Errorf("parallel builder: image %d differs", k)
					return
				}
			}
		}()
	}
	wg.Wait()
}
