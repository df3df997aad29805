package main

import (
	"slices"
	"strings"
	"testing"
)

func TestMountHelperArgs(t *testing.T) {
	app := newApp()
	for _, c := range []struct {
		args string
		want string // "" when not the helper form
	}{
		// As mount.fuse3 runs it for "mount -t fuse.txfs" and fstab.
		{"txfs /img /mnt -o rw,noclean,dev,suid", "txfs mount --daemon -o rw,noclean,dev,suid -- /img /mnt"},
		{"txfs /img /mnt", "txfs mount --daemon -- /img /mnt"},
		{"txfs /img /mnt -oro", "txfs mount --daemon -o ro -- /img /mnt"},
		{"txfs /img /mnt -o defaults,noauto,nofail,_netdev,x-systemd.automount,user,comment=x,clean_policy=greedy",
			"txfs mount --daemon -o clean_policy=greedy -- /img /mnt"},
		{"txfs /img /mnt -o defaults", "txfs mount --daemon -- /img /mnt"},
		// Commands and other shapes are left to the command line parser.
		{"txfs mount /img /mnt", ""},
		{"txfs umount /mnt", ""},
		{"txfs unmount /mnt x", ""},
		{"txfs help mount", ""},
		{"txfs --help", ""},
		{"txfs /img", ""},
		{"txfs /img /mnt /x", ""},
		{"txfs bogus", ""},
	} {
		got, ok, err := mountHelperArgs(app, strings.Fields(c.args))
		if err != nil {
			t.Errorf("%s: %v", c.args, err)
			continue
		}
		if c.want == "" {
			if ok {
				t.Errorf("%s: taken as the helper form: %q", c.args, got)
			}
			continue
		}
		if !ok || !slices.Equal(got, strings.Fields(c.want)) {
			t.Errorf("%s: %q, %v; want %q", c.args, got, ok, c.want)
		}
	}
	if _, _, err := mountHelperArgs(app, strings.Fields("txfs /img /mnt -n")); err == nil {
		t.Errorf("an unknown flag in the helper form is accepted")
	}
}

func TestMountFlagOptions(t *testing.T) {
	m, err := mountOptions([]string{"rw", "nosuid", "nodev", "suid", "dev", "async", "noexec"})
	if err != nil || !m.fuse.NoExec || m.fuse.ReadOnly {
		t.Errorf("mount flags: %+v, %v", m, err)
	}
	if m, err = mountOptions([]string{"noexec", "exec"}); err != nil || m.fuse.NoExec {
		t.Errorf("exec after noexec: %+v, %v", m, err)
	}
}

func TestExitStatus(t *testing.T) {
	if got := exitStatus(exitStatusError{status: exitBusy, msg: "busy"}); got != exitBusy {
		t.Errorf("the server's status: %d, want %d", got, exitBusy)
	}
	status, msg, ok := parseFailure(formatFailure(exitBusy, "open x: busy\nsecond line"))
	if !ok || status != exitBusy || msg != "open x: busy; second line" {
		t.Errorf("the supervisor's report: %d %q %v", status, msg, ok)
	}
	if _, _, ok := parseFailure("ready\n"); ok {
		t.Errorf("ready parsed as a failure")
	}
}
