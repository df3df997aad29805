// Package falloctab reads testdata/fallocate.txt, the table of what
// fallocate(2) does on ext4, and says what a file must look like after
// each of its cases. The engine's tests and the mount's tests both check
// txfs against it; the mount's tests also check it against a real ext4.
package falloctab

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// fallocate(2) modes.
const (
	KeepSize      = 0x01 // FALLOC_FL_KEEP_SIZE
	PunchHole     = 0x02 // FALLOC_FL_PUNCH_HOLE
	CollapseRange = 0x08 // FALLOC_FL_COLLAPSE_RANGE
	ZeroRange     = 0x10 // FALLOC_FL_ZERO_RANGE
	InsertRange   = 0x20 // FALLOC_FL_INSERT_RANGE
)

var modeNames = map[string]uint32{
	"0": 0, "KEEP": KeepSize, "PUNCH": PunchHole, "COLLAPSE": CollapseRange, "ZERO": ZeroRange, "INSERT": InsertRange,
}

var errnos = map[string]syscall.Errno{
	"0": 0, "EINVAL": syscall.EINVAL, "EOPNOTSUPP": syscall.EOPNOTSUPP, "EFBIG": syscall.EFBIG,
}

// Case is one line of the table, its sizes worked out for one filesystem.
type Case struct {
	Name           string
	Size, Off, Len int64
	Mode           uint32
	Errno          syscall.Errno
	Modified       bool // mtime and ctime set and set-ID bits cleared (see the table)
}

// Sparse cases make their file by truncate, and their content is not
// compared.
func (c Case) Sparse(bs int64) bool { return c.Size > 64*bs }

// Path is where the table is.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "fallocate.txt")
}

// Load reads the table for a filesystem with blocks of bs bytes and files
// of at most maxSize bytes.
func Load(bs, maxSize int64) ([]Case, error) {
	f, err := os.Open(Path())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var cases []Case
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		c, err := parse(text, bs, maxSize)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", Path(), line, err)
		}
		cases = append(cases, c)
	}
	return cases, sc.Err()
}

// fields: a name (words, maybe with commas), then size mode off len errno
// modified, separated by two or more spaces.
var lineRE = regexp.MustCompile(`^(.*?)\s{2,}(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(yes|no)$`)

func parse(text string, bs, maxSize int64) (Case, error) {
	m := lineRE.FindStringSubmatch(text)
	if m == nil {
		return Case{}, fmt.Errorf("cannot read %q", text)
	}
	c := Case{Name: m[1], Modified: m[7] == "yes"}
	for _, p := range []struct {
		s   string
		dst *int64
	}{{m[2], &c.Size}, {m[4], &c.Off}, {m[5], &c.Len}} {
		n, err := number(p.s, bs, maxSize)
		if err != nil {
			return Case{}, err
		}
		*p.dst = n
	}
	for _, name := range strings.Split(m[3], "|") {
		mode, ok := modeNames[name]
		if !ok {
			return Case{}, fmt.Errorf("unknown mode %q", name)
		}
		c.Mode |= mode
	}
	errno, ok := errnos[m[6]]
	if !ok {
		return Case{}, fmt.Errorf("unknown errno %q", m[6])
	}
	c.Errno = errno
	return c, nil
}

// number reads a sum of terms: N, NB, B, MAX, 2^N.
func number(s string, bs, maxSize int64) (int64, error) {
	var total int64
	sign := int64(1)
	for len(s) > 0 {
		i := strings.IndexAny(s[1:], "+-") + 1
		if i == 0 {
			i = len(s)
		}
		term := s[:i]
		var v int64
		var err error
		switch {
		case term == "MAX":
			v = maxSize
		case term == "B":
			v = bs
		case strings.HasPrefix(term, "2^"):
			var e int
			e, err = strconv.Atoi(term[2:])
			v = 1 << e
		case strings.HasSuffix(term, "B"):
			v, err = strconv.ParseInt(strings.TrimSuffix(term, "B"), 10, 64)
			v *= bs
		default:
			v, err = strconv.ParseInt(term, 10, 64)
		}
		if err != nil {
			return 0, fmt.Errorf("number %q: %v", s, err)
		}
		total += sign * v
		if i == len(s) {
			break
		}
		sign = 1
		if s[i] == '-' {
			sign = -1
		}
		s = s[i+1:]
	}
	return total, nil
}

// Content is what the file of a case holds before the call (nil for a
// sparse case).
func Content(c Case, bs int64) []byte {
	if c.Sparse(bs) {
		return nil
	}
	b := make([]byte, c.Size)
	for i := range b {
		b[i] = byte(int64(i)/bs + 1)
		if int64(i)%bs < 8 {
			b[i] = byte(0xa0 + int64(i)%bs)
		}
	}
	return b
}

// WantSize is the size of the file after the case succeeded.
func WantSize(c Case) int64 {
	end := c.Off + c.Len
	switch {
	case c.Mode&KeepSize != 0:
		return c.Size
	case c.Mode == CollapseRange:
		return c.Size - c.Len
	case c.Mode == InsertRange:
		return c.Size + c.Len
	}
	return max(c.Size, end)
}

// Want is what the file holds after the case succeeded on content (nil
// for a sparse case).
func Want(c Case, content []byte) []byte {
	if content == nil {
		return nil
	}
	d := append([]byte(nil), content...)
	switch c.Mode &^ KeepSize {
	case CollapseRange:
		return append(d[:c.Off], content[c.Off+c.Len:]...)
	case InsertRange:
		return append(append(d[:c.Off], make([]byte, c.Len)...), content[c.Off:]...)
	case ZeroRange, PunchHole:
		clear(d[min(c.Off, c.Size):min(c.Off+c.Len, c.Size)])
	}
	if n := WantSize(c); n > int64(len(d)) {
		d = append(d, make([]byte, n-int64(len(d)))...)
	}
	return d
}

// State is what a test saw of the file.
type State struct {
	Size         int64
	Content      []byte // nil when not read
	Mode         uint32
	Mtime, Ctime [2]int64 // seconds, nanoseconds
}

// StateOf makes the State of a file from its attributes (times as seconds
// and nanoseconds), with its content read by read when content is set.
func StateOf(size int64, mode uint32, mtime, ctime [2]int64, content bool, read func([]byte) (int, error)) (State, error) {
	s := State{Size: size, Mode: mode, Mtime: mtime, Ctime: ctime}
	if !content {
		return s, nil
	}
	s.Content = make([]byte, size)
	if n, err := read(s.Content); n != len(s.Content) {
		return s, fmt.Errorf("read %d of %d bytes: %v", n, size, err)
	}
	return s, nil
}

// Check compares the file before and after the call, which returned
// errno, with the case, and lists what differs. modified says whether the
// call must count as a change of the file; setID whether that clears the
// set-ID bits (only for a caller other than root).
func Check(c Case, bs int64, errno syscall.Errno, before, after State, modified, setID bool) []string {
	var bad []string
	if errno != c.Errno {
		bad = append(bad, fmt.Sprintf("errno %v, want %v", errno, c.Errno))
	}
	wantSize, want := c.Size, Content(c, bs)
	if errno == 0 && c.Errno == 0 {
		wantSize, want = WantSize(c), Want(c, want)
	}
	if after.Size != wantSize {
		bad = append(bad, fmt.Sprintf("size %d, want %d", after.Size, wantSize))
	}
	if want != nil && !bytes.Equal(after.Content, want) {
		bad = append(bad, fmt.Sprintf("content differs from the model (%d bytes, want %d) at byte %d", len(after.Content), len(want), firstDiff(after.Content, want)))
	}
	changed := after.Mtime != before.Mtime && after.Ctime != before.Ctime
	if changed != modified {
		bad = append(bad, fmt.Sprintf("mtime %v -> %v, ctime %v -> %v: changed %v, want %v", before.Mtime, after.Mtime, before.Ctime, after.Ctime, changed, modified))
	}
	const setIDBits = syscall.S_ISUID | syscall.S_ISGID
	if cleared := after.Mode&setIDBits == 0; setID && cleared != modified {
		bad = append(bad, fmt.Sprintf("mode %#o -> %#o: set-ID bits cleared %v, want %v", before.Mode, after.Mode, cleared, modified))
	}
	return bad
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
