package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/txfs/txfs"
	"github.com/txfs/txfs/segment"
)

func TestReload(t *testing.T) {
	dev := segment.NewMemDevice(16 << 20)
	if err := txfs.Format(dev, txfs.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := txfs.Open(dev, txfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	opts := []string{"cache=16M", "noatime"}
	set, err := mountOptions(opts)
	if err != nil {
		t.Fatal(err)
	}
	m := &mountedVolume{Volume: v, opts: opts, set: set}
	policy := func() string {
		st, err := v.Status()
		if err != nil {
			t.Fatal(err)
		}
		return st.Cleaner.Policy + " " + st.Cleaner.State
	}

	applied, err := m.Reload([]string{"clean_policy=greedy,clean_pace=5ms"})
	if err != nil || strings.Join(applied, ",") != "clean_policy=greedy,clean_pace=5ms" || policy() != "greedy idle" {
		t.Fatalf("reload of the cleaner: %v, %v; policy %s", applied, err, policy())
	}
	// The options in force may be given again, whole.
	if _, err := m.Reload([]string{"cache=16M,noatime,clean_policy=age-threshold"}); err != nil || policy() != "age-threshold idle" {
		t.Fatalf("reload with the mount's options again: %v; policy %s", err, policy())
	}
	for _, o := range []string{"ro", "cache=32M", "atime", "allow_other", "readahead=512", "metrics=127.0.0.1:9999"} {
		_, err := m.Reload([]string{"clean_policy=cost-benefit", o})
		name := strings.SplitN(strings.TrimPrefix(o, "atime"), "=", 2)[0]
		if name == "" {
			name = "noatime"
		}
		if !errors.Is(err, txfs.ErrInvalid) || !strings.Contains(err.Error(), name+" cannot change while mounted") {
			t.Errorf("reload %s: %v", o, err)
		}
		if policy() != "age-threshold idle" {
			t.Fatalf("a refused reload changed the policy to %s", policy())
		}
	}
	if _, err := m.Reload([]string{"clean_low=9,clean_high=3"}); !errors.Is(err, txfs.ErrInvalid) {
		t.Errorf("low above high: %v", err)
	}
	if _, err := m.Reload([]string{"bogus"}); !errors.Is(err, txfs.ErrInvalid) {
		t.Errorf("an unknown option: %v", err)
	}
	if _, err := m.Reload(nil); !errors.Is(err, txfs.ErrInvalid) {
		t.Errorf("no option: %v", err)
	}
}
