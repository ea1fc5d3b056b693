package harness

import "osim/bench/internal/tftpclient"

// RunStats is one measured run of a cell (one burst, for burst cells).
type RunStats struct {
	MBps    float64 `json:"mbps"` // 10^6 bytes per second, aggregate
	Bytes   int64   `json:"bytes"`
	WallS   float64 `json:"wall_s"`
	Clients int     `json:"clients"`
	OK      int     `json:"ok"`
	Failed  int     `json:"failed"`
	// Server cost over the run: CPU of its process tree, peak RSS of its
	// main process (VmHWM), peak sampled PSS of its tree.
	CPUS    float64 `json:"server_cpu_s"`
	HWMMiB  float64 `json:"server_hwm_mib"`
	PSSMiB  float64 `json:"server_tree_pss_mib"`
	Metered bool    `json:"metered"`
	// Client-side counters, summed over the clients.
	RRQs      int               `json:"rrqs"`
	Timeouts  int               `json:"timeouts"`
	Dups      int               `json:"dups"`
	Gaps      int               `json:"gaps"`
	Strays    int               `json:"strays"`
	StrayTIDs int               `json:"stray_tids"`
	P50S      float64           `json:"p50_s"`
	P99S      float64           `json:"p99_s"`
	MaxS      float64           `json:"max_s"`
	Failures  map[string]int    `json:"failures,omitempty"`
	Samples   map[string]string `json:"failure_samples,omitempty"`
	// Linger is checked after each burst.
	Linger *Linger `json:"linger,omitempty"`
}

// Linger is what the server still held after a burst's clients had all
// finished: extra sockets, threads and processes over its idle baseline,
// and osim-bootd's active-transfers gauge.
type Linger struct {
	AfterS       float64 `json:"after_s"`
	Sockets      int     `json:"extra_sockets"`
	Threads      int     `json:"extra_threads"`
	Procs        int     `json:"extra_procs"`
	ActiveGauge  float64 `json:"active_transfers_gauge"` // -1 when the server has none
	DrainedS     float64 `json:"drained_s,omitempty"`    // after the last burst: time until back to baseline
	DrainTimeout bool    `json:"drain_timeout,omitempty"`
}

// Outcome is one server's result for one cell.
type Outcome struct {
	Server  string `json:"server"`
	Cell    string `json:"cell"`
	Label   string `json:"label"`
	Kind    Kind   `json:"kind"`
	Skipped string `json:"skipped,omitempty"`
	// Headline figures: the median run for single cells, the sum for bursts.
	MBps    float64 `json:"mbps"`
	Failed  int     `json:"failed"`
	Clients int     `json:"clients"`
	CPUS    float64 `json:"server_cpu_s"`
	HWMMiB  float64 `json:"server_hwm_mib"`
	PSSMiB  float64 `json:"server_tree_pss_mib"`
	Metered bool    `json:"metered"` // false: the server's costs could not be read (it died)
	// What the server agreed to (first successful read).
	OACK      bool       `json:"oack"`
	Echoed    []string   `json:"echoed"`
	GotBlk    int        `json:"blksize"`
	GotWindow int        `json:"windowsize"`
	Notes     []string   `json:"notes"`
	Runs      []RunStats `json:"runs"`
}

func runFrom(lr tftpclient.LoadResult) RunStats {
	return RunStats{
		MBps: lr.MBps(), Bytes: lr.Bytes, WallS: lr.Wall.Seconds(),
		Clients: lr.Clients, OK: lr.OK, Failed: lr.Failed,
		RRQs: lr.RRQs, Timeouts: lr.Timeouts, Dups: lr.Dups, Gaps: lr.Gaps,
		Strays: lr.Strays, StrayTIDs: lr.StrayTIDs,
		P50S: lr.P50.Seconds(), P99S: lr.P99.Seconds(), MaxS: lr.Max.Seconds(),
		Failures: lr.Failures, Samples: lr.Samples,
	}
}

const bytesPerMiB = 1 << 20
