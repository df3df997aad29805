package cache

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Op is what a trace event did to a cache.
type Op uint8

const (
	// Get is a lookup of a key of a weight: a hit if cached, else a miss
	// that brings it in.
	Get Op = iota + 1
	// Put brings a key in, or changes its weight, without a lookup: a
	// tree node just written out stays cached, clean.
	Put
	// Del drops a key: its block was freed and may name another later.
	Del
)

// Event is one access of a trace.
type Event struct {
	Op     Op
	Key    uint64
	Weight int64
}

// traceMagic starts every trace. An event follows as a byte (its Op), the
// zigzag varint of its key minus the key before, and for Get and Put the
// uvarint of its weight.
const traceMagic = "txfs-cachetrace-1\n"

// TraceWriter writes events in the compact trace format. Not safe for
// concurrent use.
type TraceWriter struct {
	w    *bufio.Writer
	prev uint64
	buf  [2*binary.MaxVarintLen64 + 1]byte
	err  error
}

// NewTraceWriter starts a trace on w.
func NewTraceWriter(w io.Writer) *TraceWriter {
	t := &TraceWriter{w: bufio.NewWriterSize(w, 64<<10)}
	_, t.err = t.w.WriteString(traceMagic)
	return t
}

// Record appends one event. The first error sticks and Flush returns it.
func (t *TraceWriter) Record(op Op, key uint64, weight int64) {
	if t.err != nil {
		return
	}
	b := append(t.buf[:0], byte(op))
	b = binary.AppendVarint(b, int64(key-t.prev))
	if op != Del {
		b = binary.AppendUvarint(b, uint64(weight))
	}
	t.prev = key
	_, t.err = t.w.Write(b)
}

// Flush writes out what is buffered and returns the first error met.
func (t *TraceWriter) Flush() error {
	if t.err != nil {
		return t.err
	}
	return t.w.Flush()
}

// ReadTrace reads a whole trace written by TraceWriter.
func ReadTrace(r io.Reader) ([]Event, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(traceMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != traceMagic {
		return nil, errors.New("cache: not a cache trace")
	}
	var out []Event
	var prev uint64
	for {
		op, err := br.ReadByte()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if Op(op) < Get || Op(op) > Del {
			return nil, fmt.Errorf("cache: trace event %d has unknown op %d", len(out), op)
		}
		d, err := binary.ReadVarint(br)
		if err != nil {
			return nil, fmt.Errorf("cache: trace event %d: %w", len(out), err)
		}
		e := Event{Op: Op(op), Key: prev + uint64(d)}
		if e.Op != Del {
			w, err := binary.ReadUvarint(br)
			if err != nil || w > 1<<40 {
				return nil, fmt.Errorf("cache: trace event %d: bad weight (%v)", len(out), err)
			}
			e.Weight = int64(w)
		}
		prev = e.Key
		out = append(out, e)
	}
}

// Result counts what a replay's lookups found.
type Result struct {
	Hits, Misses uint64
}

// HitRate is the share of lookups that hit, from 0 to 1.
func (r Result) HitRate() float64 {
	if r.Hits+r.Misses == 0 {
		return 0
	}
	return float64(r.Hits) / float64(r.Hits+r.Misses)
}

// Replay runs events through a cache of capacity bytes ordered by p and
// counts its lookups. Pinning is not in traces: the replay is of the
// cache's clean entries.
func Replay(events []Event, p Policy, capacity int64) Result {
	c := NewCache(p, capacity)
	var r Result
	for _, e := range events {
		switch e.Op {
		case Get:
			if c.Access(e.Key, e.Weight) {
				r.Hits++
			} else {
				r.Misses++
			}
		case Put:
			c.Set(e.Key, e.Weight)
		case Del:
			c.Remove(e.Key)
		}
	}
	return r
}

// WorkingSet is the bytes of all the keys a trace uses, each at the
// largest weight it has: the capacity at which only first uses miss.
func WorkingSet(events []Event) int64 {
	largest := make(map[uint64]int64)
	for _, e := range events {
		if e.Op != Del && e.Weight > largest[e.Key] {
			largest[e.Key] = e.Weight
		}
	}
	var total int64
	for _, w := range largest {
		total += w
	}
	return total
}
