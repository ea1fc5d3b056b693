package harness

import (
	"fmt"
	"strings"
	"time"
)

// Kind is how a cell drives the server.
type Kind string

const (
	// Single is one client; the cell repeats it Runs times and keeps the median.
	Single Kind = "single"
	// Concurrent is Clients clients started at once, one run.
	Concurrent Kind = "concurrent"
	// Burst is Runs back-to-back bursts of Clients clients that re-send their
	// RRQ every second until answered.
	Burst Kind = "burst"
)

// Cell is one setting of the matrix.
type Cell struct {
	ID    string // stable, for -cells and the JSON
	Label string // for the tables
	Kind  Kind
	File  string
	// Blksize and Window asked for; Window 0 leaves windowsize out (lockstep).
	Blksize, Window int
	Clients, Runs   int
	// Limit bounds each read; a read still running then is a failure.
	Limit time.Duration
	// Ceiling cells also run against the bare sender.
	Ceiling bool
	// Burst cells: how long after each burst the leftovers are counted, and
	// how long, after the last, the server may take to be idle again.
	LingerAfter, DrainLimit time.Duration
}

// Matrix is the cells and the files they read.
type Matrix struct {
	Cells []Cell
	Sizes map[string]int
	// SettleLimit bounds the wait for a server to be idle between cells;
	// one still busy then is restarted.
	SettleLimit time.Duration
}

const (
	mib = 1 << 20
	kib = 1 << 10
)

// shape sets the sizes of one matrix: the full one or -quick.
type shape struct {
	big, conc, nbp int   // file sizes
	clients        []int // concurrent cells
	burstClients   int
	singleRuns     int
	singleLimit    time.Duration
	concLimit      func(clients int) time.Duration
	burstLimit     time.Duration
	lingerAfter    time.Duration
	drainLimit     time.Duration
	settleLimit    time.Duration
}

var (
	full = shape{
		big: 64 * mib, conc: 4 * mib, nbp: 1 * mib,
		clients: []int{1000, 5000}, burstClients: 1000, singleRuns: 3,
		singleLimit: 60 * time.Second,
		// 5,000 x 4 MiB is 21 GB: at a lockstep server's 100-300 MB/s that
		// is 1-3.5 minutes; a server slower than that shows as failures.
		concLimit: func(n int) time.Duration { return time.Duration(n/25+20) * time.Second },
		// Burst clients retry until answered, up to this: a server that
		// never answers them costs 3 x this.
		burstLimit:  20 * time.Second,
		lingerAfter: 2 * time.Second,
		drainLimit:  20 * time.Second,
		settleLimit: 10 * time.Second,
	}
	quick = shape{
		big: 8 * mib, conc: 1 * mib, nbp: 256 * kib,
		clients: []int{50, 200}, burstClients: 100, singleRuns: 1,
		singleLimit: 20 * time.Second,
		concLimit:   func(int) time.Duration { return 20 * time.Second },
		burstLimit:  15 * time.Second,
		lingerAfter: time.Second,
		drainLimit:  3 * time.Second,
		settleLimit: 3 * time.Second,
	}
)

// NewMatrix builds the full matrix, or the quick one for smoke tests.
// concMiB, when > 0, replaces the size of the concurrent cells' file.
func NewMatrix(isQuick bool, concMiB int) Matrix {
	s := full
	if isQuick {
		s = quick
	}
	if concMiB > 0 {
		s.conc = concMiB * mib
	}
	big := fmt.Sprintf("big-%dm.bin", s.big/mib)
	conc := fmt.Sprintf("conc-%dm.bin", s.conc/mib)
	nbp := fmt.Sprintf("nbp-%dk.bin", s.nbp/kib)
	m := Matrix{Sizes: map[string]int{big: s.big, conc: s.conc, nbp: s.nbp}, SettleLimit: s.settleLimit}
	size := humanSize(s.big)
	single := func(blk, win int, ceiling bool) {
		id := fmt.Sprintf("single-b%d", blk)
		label := fmt.Sprintf("%s b%d lockstep", size, blk)
		if win > 0 {
			id += fmt.Sprintf("-w%d", win)
			label = fmt.Sprintf("%s b%d w%d", size, blk, win)
		}
		m.Cells = append(m.Cells, Cell{ID: id, Label: label, Kind: Single, File: big,
			Blksize: blk, Window: win, Clients: 1, Runs: s.singleRuns, Limit: s.singleLimit, Ceiling: ceiling})
	}
	single(512, 0, false)
	single(1468, 0, true)
	single(8192, 0, false)
	single(1468, 8, false)
	single(1468, 16, true)
	single(1468, 64, true)
	for _, n := range s.clients {
		for _, win := range []int{0, 16} {
			id := fmt.Sprintf("conc%d-b1468", n)
			label := fmt.Sprintf("%d x %s b1468", n, humanSize(s.conc))
			if win > 0 {
				id += fmt.Sprintf("-w%d", win)
				label += fmt.Sprintf(" w%d", win)
			}
			m.Cells = append(m.Cells, Cell{ID: id, Label: label, Kind: Concurrent, File: conc,
				Blksize: 1468, Window: win, Clients: n, Runs: 1, Limit: s.concLimit(n)})
		}
	}
	m.Cells = append(m.Cells, Cell{
		ID:    fmt.Sprintf("burst%d", s.burstClients),
		Label: fmt.Sprintf("3 bursts x %d x %s b1468, RRQ every 1s", s.burstClients, humanSize(s.nbp)),
		Kind:  Burst, File: nbp, Blksize: 1468, Clients: s.burstClients, Runs: 3, Limit: s.burstLimit,
		LingerAfter: s.lingerAfter, DrainLimit: s.drainLimit,
	})
	return m
}

// Select keeps the cells whose ID starts with one of the comma-separated
// prefixes; an empty list keeps all.
func (m Matrix) Select(prefixes string) Matrix {
	if prefixes == "" {
		return m
	}
	var keep []Cell
	for _, c := range m.Cells {
		for _, p := range strings.Split(prefixes, ",") {
			if p = strings.TrimSpace(p); p != "" && strings.HasPrefix(c.ID, p) {
				keep = append(keep, c)
				break
			}
		}
	}
	m.Cells = keep
	return m
}

// MaxClients is the largest concurrency of the matrix.
func (m Matrix) MaxClients() int {
	n := 1
	for _, c := range m.Cells {
		n = max(n, c.Clients)
	}
	return n
}

func humanSize(n int) string {
	if n >= mib {
		return fmt.Sprintf("%d MiB", n/mib)
	}
	return fmt.Sprintf("%d KiB", n/kib)
}
