package fuse

import (
	"os"
	"strings"
)

// Mounts returns every mount of /proc/self/mountinfo, in the kernel's
// order.
func Mounts() ([]MountInfo, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var all []MountInfo
	for _, line := range strings.Split(string(data), "\n") {
		if m, ok := parseMountInfo(line); ok {
			all = append(all, m)
		}
	}
	return all, nil
}
