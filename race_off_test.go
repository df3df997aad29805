//go:build !race

package txfs

// raceEnabled: the race detector is on, and measures of memory or time
// mean little.
const raceEnabled = false
