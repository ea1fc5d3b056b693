package peers

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// State is a small file listing the peers this run started (pid and
// command line). A run killed before its cleanup leaves it behind, and the
// next run ends exactly those processes, no others.
type State struct {
	path string
	mu   sync.Mutex
	pids map[int][]string
}

// OpenState reaps what an earlier run left in path and starts a new record.
func OpenState(path string) (*State, error) {
	s := &State{path: path, pids: map[int][]string{}}
	if b, err := os.ReadFile(path); err == nil {
		var old map[int][]string
		if json.Unmarshal(b, &old) == nil {
			for pid, args := range old {
				reapStale(pid, args)
			}
		}
	}
	return s, s.save()
}

// reapStale kills pid's group only if pid still runs the recorded command.
func reapStale(pid int, args []string) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return
	}
	got := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	// `ip netns exec NS prog ...` runs as prog ...: compare the tail.
	if len(got) == 0 || len(got) > len(args) || !slices.Equal(got, args[len(args)-len(got):]) {
		return
	}
	slog.Warn("ending a peer left by an earlier run", "pid", pid, "cmd", strings.Join(got, " "))
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
}

// Add records a started peer.
func (s *State) Add(pid int, args []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pids[pid] = args
	if err := s.save(); err != nil {
		slog.Warn("peers: state not saved", "err", err)
	}
}

// Remove forgets a stopped peer.
func (s *State) Remove(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pids, pid)
	if err := s.save(); err != nil {
		slog.Warn("peers: state not saved", "err", err)
	}
}

func (s *State) save() error {
	b, err := json.Marshal(s.pids)
	if err != nil {
		return err
	}
	if err := os.WriteFile(s.path, b, 0o644); err != nil {
		return fmt.Errorf("peers: write state %s: %w", s.path, err)
	}
	return nil
}
