package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/internal/cache"
)

// nodeCacheSettings is what the node_* options ask for.
type nodeCacheSettings struct {
	// policy is "-o node_cache=POLICY", the node cache's eviction
	// policy; "" is the engine's default. It can change on reload.
	policy string
	// trace is "-o node_trace=FILE": record the node cache's lookups
	// there while mounted, for scripts/cachetrace to replay.
	trace string
}

// nodeCacheOption parses a node_* option into s, and reports whether o
// was one.
func nodeCacheOption(s *nodeCacheSettings, o string) (bool, error) {
	name, val, _ := strings.Cut(o, "=")
	switch name {
	case "node_cache":
		if !cache.Valid(val) {
			return true, usagef("node_cache=%s: want one of %s", val, strings.Join(cache.Names(), ", "))
		}
		s.policy = val
	case "node_trace":
		if val == "" {
			return true, usagef("node_trace needs a file name")
		}
		s.trace = val
	default:
		return false, nil
	}
	return true, nil
}

// startNodeCache applies the node_* options to a volume just opened, and
// returns what ends the trace (which the caller calls after closing the
// volume, so that the trace holds the last checkpoint too).
func startNodeCache(v *txfs.Volume, s nodeCacheSettings) (stop func(), err error) {
	if err := v.SetNodeCache(s.policy); err != nil {
		return nil, err
	}
	if s.trace == "" {
		return func() {}, nil
	}
	f, err := os.Create(s.trace)
	if err != nil {
		return nil, fmt.Errorf("node_trace: %w", err)
	}
	end := v.TraceNodeCache(f)
	return func() {
		if err := end(); err != nil {
			fmt.Fprintf(os.Stderr, "txfs: node_trace %s: %v\n", s.trace, err)
		}
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "txfs: node_trace %s: %v\n", s.trace, err)
		}
	}, nil
}
