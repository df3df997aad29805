// Package bytesize reads byte counts as the command lines write them.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse parses a byte count with an optional K, M, G or T suffix (powers
// of 1024; "KiB" and "KB" spellings too).
func Parse(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q (a positive number with an optional K, M, G or T suffix)", s)
	}
	return n * mult, nil
}
