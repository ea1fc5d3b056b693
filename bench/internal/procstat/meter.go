package procstat

import (
	"sync"
	"time"
)

// Usage is what a tree spent during a measured span.
type Usage struct {
	CPU     time.Duration // user+system of the tree over the span
	HWM     int64         // peak RSS of the main process over the span, bytes
	PeakPSS int64         // highest sampled PSS of the whole tree, bytes
}

// CPUFunc reads a tree's CPU time so far: a lab.Cgroup's CPU, or CPU(pid).
type CPUFunc func() (time.Duration, error)

// Meter measures one span of a server's life.
type Meter struct {
	pid      int
	cpu      CPUFunc
	cpu0     time.Duration
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	peakPSS  int64
	interval time.Duration
}

// Start begins a span: it resets the main process's VmHWM and samples the
// tree's PSS every interval (reading smaps costs the machine a little, so
// not too often).
func Start(pid int, cpu CPUFunc, interval time.Duration) (*Meter, error) {
	if err := ResetHWM(pid); err != nil {
		return nil, err
	}
	cpu0, err := cpu()
	if err != nil {
		return nil, err
	}
	m := &Meter{pid: pid, cpu: cpu, cpu0: cpu0, stop: make(chan struct{}), interval: interval}
	m.sample()
	m.wg.Go(m.loop)
	return m, nil
}

func (m *Meter) loop() {
	tick := time.NewTicker(m.interval)
	defer tick.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-tick.C:
			m.sample()
		}
	}
}

func (m *Meter) sample() {
	p := TreePSS(m.pid)
	m.mu.Lock()
	m.peakPSS = max(m.peakPSS, p)
	m.mu.Unlock()
}

// Stop ends the span and returns its usage.
func (m *Meter) Stop() (Usage, error) {
	close(m.stop)
	m.wg.Wait()
	m.sample()
	cpu, err := m.cpu()
	if err != nil {
		return Usage{}, err
	}
	hwm, err := HWM(m.pid)
	if err != nil {
		return Usage{}, err
	}
	return Usage{CPU: cpu - m.cpu0, HWM: hwm, PeakPSS: m.peakPSS}, nil
}
