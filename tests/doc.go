// Package tests holds the end-to-end tests of txfs: they build the real
// binaries (txfs, mkfs.txfs, fsck.txfs), format images, mount them in a
// separate txfs process through FUSE, run ordinary programs (cp, diff, tar,
// git, sqlite3) on the mount, kill the daemon with SIGKILL in the middle of
// a workload, and check every image with fsck.txfs afterwards. Others fill
// volumes until ENOSPC and empty them (limits_test.go), damage images
// (damage_test.go), and run the installation manual, docs/INSTALL.md
// (install_test.go).
//
// The tests need root and /dev/fuse; elsewhere they skip and say why. The
// run fails if it leaves a txfs mount behind. TXFS_E2E_SEED repeats a
// TestKill9 run; CI (set) makes TestKill9 run longer.
package tests
