package txfs

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
)

// modelSnapshot is a snapshot in the crash model: the model's tree as it
// was taken, and its dump.
type modelSnapshot struct {
	name string
	root *mNode
	dump string
}

// copyTree copies the model tree under root, hard links staying links.
func copyTree(root *mNode) *mNode {
	copies := map[*mNode]*mNode{}
	var cp func(n, parent *mNode) *mNode
	cp = func(n, parent *mNode) *mNode {
		if c, ok := copies[n]; ok {
			return c
		}
		c := *n
		c.parent = parent
		c.data = slices.Clone(n.data)
		c.xattrs = map[string][]byte{}
		for k, v := range n.xattrs {
			c.xattrs[k] = slices.Clone(v)
		}
		copies[n] = &c
		if n.children != nil {
			c.children = map[string]*mNode{}
			for name, ch := range n.children {
				c.children[name] = cp(ch, &c)
			}
		}
		return &c
	}
	return cp(root, nil)
}

// state is the model's whole state: the live tree and every snapshot.
func (r *modelRun) state() string {
	var b strings.Builder
	b.WriteString(r.m.dump())
	for _, s := range r.snaps {
		fmt.Fprintf(&b, "\n== snapshot %s\n%s", s.name, s.dump)
	}
	return b.String()
}

// volumeState is the volume's whole state as state renders the model's.
func volumeState(v *Volume) (string, error) {
	d, err := dump(v)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(d)
	list, err := v.Snapshots()
	if err != nil {
		return "", err
	}
	for _, s := range list {
		d, err := dumpSnapshot(v, s.Name)
		if err != nil {
			return "", fmt.Errorf("snapshot %s: %w", s.Name, err)
		}
		fmt.Fprintf(&b, "\n== snapshot %s\n%s", s.Name, d)
	}
	return b.String(), nil
}

var snapNamePool = []string{"s1", "s2", "s3", "s4"}

// snapshotOp creates, restores or deletes a snapshot, with power cuts at
// the stages of its checkpoint: the volume must come back with the
// operation whole or not at all. Each is durable when it returns.
func (r *modelRun) snapshotOp() {
	rng, v := r.rng, r.v
	name := snapNamePool[rng.Intn(len(snapNamePool))]
	i := slices.IndexFunc(r.snaps, func(s modelSnapshot) bool { return s.name == name })
	var do func(string) error
	var want syscall.Errno
	op := []string{"create", "restore", "delete"}[rng.Intn(3)]
	// On a full volume it may answer ENOSPC, and then change nothing.
	root, snaps := r.m.root, slices.Clone(r.snaps)
	if op == "restore" && len(r.held) > 0 {
		op = "create" // open files that have no name are the live tree's
	}
	switch op {
	case "create":
		do = v.CreateSnapshot
		if i >= 0 {
			want = syscall.EEXIST
		} else {
			r.snaps = append(r.snaps, modelSnapshot{name: name, root: copyTree(r.m.root), dump: r.m.dump()})
		}
	case "restore":
		do = v.RestoreSnapshot
		if i < 0 {
			want = syscall.ENOENT
		} else {
			r.m.root = copyTree(r.snaps[i].root)
		}
	case "delete":
		do = v.DeleteSnapshot
		if i < 0 {
			want = syscall.ENOENT
		} else {
			r.snaps = slices.Delete(r.snaps, i, i+1)
		}
	}
	// The state after it is a state a crash may leave from now on.
	desc := fmt.Sprintf("snapshot %s %s", op, name)
	r.snapshotAhead = true
	r.step(desc)
	r.snapshotAhead = false
	// The hook runs under the volume's lock: the images are recovered
	// once the operation returns.
	var images []crashImage
	testHookSnapshot = func(stage string) {
		if rng.Intn(3) == 0 {
			images = append(images, r.crashImage())
		}
	}
	err := do(name)
	testHookSnapshot = nil
	for _, img := range images {
		r.recoverImage(img)
	}
	if r.noSpace(err) {
		r.m.root, r.snaps = root, snaps
		r.step(desc + ": no space")
		return
	}
	r.expect(fmt.Sprintf("snapshot %s %s", op, name), err, want)
	// Reference counts, lazy ones included.
	if err := v.Check(); err != nil {
		r.fatalf("check after snapshot %s %s: %v", op, name, err)
	}
	r.compareSnapshots(desc)
	r.snapshots++
	if want == 0 {
		r.synced = len(r.dumps) - 1
		r.syncWhy = fmt.Sprintf("snapshot %s %s, op %d", op, name, r.synced)
	}
}

// compareSnapshots requires every snapshot to read as its copy in the
// model: after every step, a snapshot never changes.
func (r *modelRun) compareSnapshots(after string) {
	r.t.Helper()
	for _, s := range r.snaps {
		got, err := dumpSnapshot(r.v, s.name)
		if err != nil || got != s.dump {
			r.fatalf("after %s, snapshot %s differs from the model (%v):\n%s", after, s.name, err, lineDiff(got, s.dump))
		}
	}
}
