package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/internal/cache"
	"github.com/txfs/txfs/segment"
)

func TestNodeCacheOptions(t *testing.T) {
	m, err := mountOptions([]string{"node_cache=lru", "node_trace=/tmp/t", "node_cache=lfu"})
	if err != nil || m.nodeCache != (nodeCacheSettings{policy: "lfu", trace: "/tmp/t"}) {
		t.Fatalf("parsed %+v, %v", m.nodeCache, err)
	}
	for _, bad := range []string{"node_cache=", "node_cache=fifo", "node_trace=", "node_trace"} {
		if _, err := mountOptions([]string{bad}); err == nil || !strings.Contains(err.Error(), strings.SplitN(bad, "=", 2)[0]) {
			t.Errorf("option %q: error %v, want one naming it", bad, err)
		}
	}
}

// newMemVolume formats and opens a volume on a memory device.
func newMemVolume(t *testing.T) *txfs.Volume {
	t.Helper()
	dev := segment.NewMemDevice(16 << 20)
	if err := txfs.Format(dev, txfs.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := txfs.Open(dev, txfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestReloadNodeCache: node_cache changes on a mounted volume; node_trace
// cannot.
func TestReloadNodeCache(t *testing.T) {
	v := newMemVolume(t)
	defer v.Close()
	opts := []string{"node_cache=lru"}
	set, err := mountOptions(opts)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := startNodeCache(v, set.nodeCache)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if got := v.NodeCachePolicy(); got != cache.LRU {
		t.Fatalf("mounted with node_cache=lru, policy %s", got)
	}
	m := &mountedVolume{Volume: v, opts: opts, set: set}
	if _, err := m.Reload([]string{"node_cache=lfu"}); err != nil || v.NodeCachePolicy() != cache.LFU {
		t.Fatalf("reload node_cache=lfu: %v; policy %s", err, v.NodeCachePolicy())
	}
	if _, err := m.Reload([]string{"node_trace=/tmp/x"}); !errors.Is(err, txfs.ErrInvalid) || !strings.Contains(err.Error(), "node_trace cannot change") {
		t.Fatalf("reload node_trace: %v", err)
	}
	if _, err := m.Reload([]string{"node_cache=s3fifo,ro"}); err == nil || v.NodeCachePolicy() != cache.LFU {
		t.Fatalf("a refused reload: %v; policy %s", err, v.NodeCachePolicy())
	}
}

// TestNodeTrace: node_trace records the lookups of a volume's work in a
// trace that reads back.
func TestNodeTrace(t *testing.T) {
	v := newMemVolume(t)
	path := filepath.Join(t.TempDir(), "trace")
	stop, err := startNodeCache(v, nodeCacheSettings{trace: path})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.NodeCachePolicy(); got != cache.Default {
		t.Fatalf("policy %s, want the default %s", got, cache.Default)
	}
	for i := range 200 {
		if _, err := v.Mkdir(txfs.RootIno, fmt.Sprintf("directory-%d", i), 0o755, txfs.Owner{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	stop()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events, err := cache.ReadTrace(f)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[cache.Op]int{}
	for _, e := range events {
		ops[e.Op]++
	}
	if ops[cache.Get] < 200 || ops[cache.Put] == 0 {
		t.Fatalf("trace of 200 mkdirs and a checkpoint: %v", ops)
	}
}
