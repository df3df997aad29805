package journal

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestRoundTrip(t *testing.T) {
	var w Writer
	w.Op(3)
	w.Put(key(1), []byte("value"))
	w.Del(key(2))
	w.Alloc(1 << 40)
	w.Write(1 << 40)
	w.Ref(77, -1)
	w.Put(key(3), nil)
	var got []string
	err := Decode(w.Buf, func(r *Record) error {
		got = append(got, fmt.Sprintf("%d %x %q %d %d %d", r.Type, r.Key[:2], r.Value, r.V, r.Delta, r.Op))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`6 0000 "" 0 0 3`,
		`1 0101 "value" 0 0 0`,
		`2 0202 "" 0 0 0`,
		`3 0000 "" 1099511627776 0 0`,
		`4 0000 "" 1099511627776 0 0`,
		`5 0000 "" 77 -1 0`,
		`1 0303 "" 0 0 0`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTruncatedRecordsAreCorrupt(t *testing.T) {
	var w Writer
	w.Put(key(1), []byte("some value"))
	w.Ref(5, 2)
	for n := 1; n < len(w.Buf); n++ {
		err := Decode(w.Buf[:n], func(*Record) error { return nil })
		if n != 29 && !errors.Is(err, ErrCorrupt) { // 29: exactly the Put record
			t.Fatalf("prefix of %d bytes: %v", n, err)
		}
	}
	if err := Decode([]byte{0x7f}, func(*Record) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unknown type: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	var w Writer
	w.Op(1)
	w.Put(key(1), []byte("v"))
	w.Ref(3, -1)
	f.Add(w.Buf)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = Decode(b, func(*Record) error { return nil })
	})
}
