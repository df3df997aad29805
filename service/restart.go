package service

import "time"

// RestartPolicy says when a supervisor restarts a process that crashed:
// after a delay that doubles with every recent restart, and not at all
// once Limit restarts were made within Window.
type RestartPolicy struct {
	FirstDelay time.Duration // before the first restart
	MaxDelay   time.Duration // the longest delay
	Limit      int           // restarts allowed within Window
	Window     time.Duration
}

// DefaultRestartPolicy is the policy of "txfs mount --daemon": restarts
// after 0.1, 0.2, 0.4, 0.8 and 1.6 s; a sixth crash within a minute of
// the first of five restarts ends the supervisor.
var DefaultRestartPolicy = RestartPolicy{
	FirstDelay: 100 * time.Millisecond,
	MaxDelay:   10 * time.Second,
	Limit:      5,
	Window:     time.Minute,
}

// Restarts applies a RestartPolicy to the crashes of one process.
type Restarts struct {
	policy RestartPolicy
	recent []time.Time // restarts within the window, oldest first
}

// NewRestarts starts counting restarts under p.
func NewRestarts(p RestartPolicy) *Restarts {
	return &Restarts{policy: p}
}

// Crashed records a crash at now. It returns the delay before the restart
// and true, or false when Limit restarts were already made within Window
// before now: the process is not to be restarted.
func (r *Restarts) Crashed(now time.Time) (time.Duration, bool) {
	keep := r.recent[:0]
	for _, t := range r.recent {
		if now.Sub(t) < r.policy.Window {
			keep = append(keep, t)
		}
	}
	r.recent = keep
	if len(r.recent) >= r.policy.Limit {
		return 0, false
	}
	delay := r.policy.FirstDelay
	for range r.recent {
		delay = min(2*delay, r.policy.MaxDelay)
	}
	r.recent = append(r.recent, now.Add(delay))
	return delay, true
}

// Recent is the number of restarts within the window before now.
func (r *Restarts) Recent(now time.Time) int {
	n := 0
	for _, t := range r.recent {
		if now.Sub(t) < r.policy.Window {
			n++
		}
	}
	return n
}
