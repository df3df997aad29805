package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/txfs/txfs/control"
)

// pollEvery is how often the volumes are asked while a page watches.
const pollEvery = time.Second

// State is what a page shows: every volume as its daemon last answered.
type State struct {
	Time    int64         `json:"time"` // milliseconds since 1970, when it was asked
	Volumes []VolumeState `json:"volumes"`
}

// VolumeState is one mount point. Error says, in words, why the rest is
// missing (no daemon, no answer).
type VolumeState struct {
	Dir       string             `json:"dir"`
	Error     string             `json:"error,omitempty"`
	Status    *control.Status    `json:"status,omitempty"`
	Snapshots []control.Snapshot `json:"snapshots"`
	Segments  *control.Segments  `json:"segments,omitempty"`
	// Metrics is what the daemon's /metrics says, summed over labels;
	// nil when it has none.
	Metrics *Metrics `json:"metrics,omitempty"`
}

// hub asks the volumes once a second, while some page listens, and at
// once after a change made through the console, and sends every
// listener the same answer.
type hub struct {
	collect func() State
	stop    <-chan struct{}
	wake    chan struct{}

	mu   sync.Mutex
	subs map[chan []byte]bool
	last []byte
	at   time.Time
}

func newHub(collect func() State, stop <-chan struct{}) *hub {
	h := &hub{collect: collect, stop: stop, wake: make(chan struct{}, 1), subs: map[chan []byte]bool{}}
	go h.run()
	return h
}

// kick asks for a new answer now.
func (h *hub) kick() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *hub) run() {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.mu.Lock()
			idle := len(h.subs) == 0
			h.mu.Unlock()
			if idle {
				continue
			}
		case <-h.wake:
		}
		h.publish(h.refresh())
	}
}

// refresh asks the volumes.
func (h *hub) refresh() []byte {
	b, err := json.Marshal(h.collect())
	if err != nil {
		b = []byte(fmt.Sprintf(`{"error":%q}`, err.Error()))
	}
	h.mu.Lock()
	h.last, h.at = b, time.Now()
	h.mu.Unlock()
	return b
}

func (h *hub) publish(b []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		select {
		case <-c: // a listener that has not taken the last one gets this one instead
		default:
		}
		c <- b
	}
}

// current is the last answer if it is fresh, else a new one.
func (h *hub) current() []byte {
	h.mu.Lock()
	b, at := h.last, h.at
	h.mu.Unlock()
	if b != nil && time.Since(at) < pollEvery {
		return b
	}
	return h.refresh()
}

func (h *hub) subscribe() chan []byte {
	c := make(chan []byte, 1)
	h.mu.Lock()
	h.subs[c] = true
	h.mu.Unlock()
	return c
}

func (h *hub) unsubscribe(c chan []byte) {
	h.mu.Lock()
	delete(h.subs, c)
	h.mu.Unlock()
}

// events streams the state as server-sent events until the page goes or
// the console stops.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "this connection cannot stream events")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	c := s.hub.subscribe()
	defer s.hub.unsubscribe(c)
	send := func(b []byte) bool {
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	if !send(s.hub.current()) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.stop:
			return
		case b := <-c:
			if !send(b) {
				return
			}
		}
	}
}

// collect asks every volume for its state.
func (s *Server) collect() State {
	dirs := s.config().Dirs
	st := State{Time: time.Now().UnixMilli(), Volumes: make([]VolumeState, len(dirs))}
	var wg sync.WaitGroup
	for i, dir := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.Volumes[i] = volumeState(dir)
		}()
	}
	wg.Wait()
	return st
}

func volumeState(dir string) VolumeState {
	vs := VolumeState{Dir: dir, Snapshots: []control.Snapshot{}}
	c, e := dial(dir)
	if e != nil {
		vs.Error = e.message
		return vs
	}
	defer c.Close()
	status, err := c.Status()
	if err != nil {
		vs.Error = "status: " + err.Error()
		return vs
	}
	vs.Status = &status
	list, err := c.Snapshots()
	if err != nil {
		vs.Error = "snapshots: " + err.Error()
		return vs
	}
	vs.Snapshots = list.Snapshots
	// A daemon without these still has everything above.
	if segs, err := c.Segments(); err == nil {
		vs.Segments = &segs
	}
	vs.Metrics = fetchMetrics(c.Path())
	return vs
}
