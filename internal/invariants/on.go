//go:build race || invariants

package invariants

// Enabled: this build checks invariants where state changes.
const Enabled = true
