//go:build !race && !invariants

// Package invariants says whether this build checks the engine's
// invariants where its state changes, beside the checker that tests run at
// their end: builds with the race detector (every test run of
// scripts/test.sh) and builds with the tag "invariants" do; others do not
// pay for it.
package invariants

// Enabled: this build checks invariants where state changes.
const Enabled = false
