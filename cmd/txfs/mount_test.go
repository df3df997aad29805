package main

import (
	"strings"
	"testing"
)

func TestMountOptions(t *testing.T) {
	cfg, err := mountOptions([]string{"ro", " noatime", "readahead=1024", "allow_other"})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.ReadOnly || !cfg.NoAtime || !cfg.AllowOther || cfg.ReadAheadKB != 1024 {
		t.Errorf("parsed %+v", cfg)
	}
	if cfg, err = mountOptions([]string{"readahead=0"}); err != nil || cfg.ReadAheadKB >= 0 {
		t.Errorf("readahead=0 (the kernel's default): %+v, %v", cfg, err)
	}
	for _, bad := range []string{"readahead=", "readahead=-4", "readahead=1x", "readahead=2000000", "sync", "ro=1"} {
		if _, err := mountOptions([]string{bad}); err == nil || !strings.Contains(err.Error(), strings.SplitN(bad, "=", 2)[0]) {
			t.Errorf("option %q: error %v, want one naming it", bad, err)
		}
	}
}
