package bytesize

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "4K": 4096, "64M": 64 << 20, "1G": 1 << 30, "2T": 2 << 40, "1GiB": 1 << 30, "512kb": 512 << 10} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1M", "1X", "1.5G", "99999999999T"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
