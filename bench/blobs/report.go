package blobs

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Report is a whole run.
type Report struct {
	Path    string  `json:"bootd_path"` // staged or folder
	Size    int64   `json:"size"`
	Chunk   int64   `json:"chunk"`
	Started string  `json:"started"`
	Levels  []Level `json:"levels"`
}

// Level is one concurrency level, both servers.
type Level struct {
	Readers int      `json:"readers"`
	Rounds  int      `json:"rounds"` // per server, interleaved
	Servers []Server `json:"servers"`
}

// Server pools one server's rounds at one level.
type Server struct {
	Name string `json:"name"`
	// MBps is bytes over wall time summed over the rounds (10^6 B/s).
	MBps float64 `json:"mb_per_s"`
	// P50 and P99 of the readers' completion times, seconds, all rounds.
	P50 float64 `json:"p50_s"`
	P99 float64 `json:"p99_s"`
	// CPUPerGB is server user+system seconds per 10^9 bytes delivered.
	CPUPerGB float64 `json:"cpu_s_per_gb"`
	Bytes    int64   `json:"bytes"`
	Wall     float64 `json:"wall_s"`
	CPU      float64 `json:"cpu_s"`

	times []time.Duration
}

func (s *Server) add(r *round) {
	s.Bytes += r.bytes
	s.Wall += r.wall.Seconds()
	s.CPU += r.cpu.Seconds()
	s.times = append(s.times, r.readers...)
}

func (s *Server) finish() {
	s.MBps = float64(s.Bytes) / 1e6 / s.Wall
	s.CPUPerGB = s.CPU / (float64(s.Bytes) / 1e9)
	slices.Sort(s.times)
	s.P50, s.P99 = quantile(s.times, 0.50), quantile(s.times, 0.99)
}

func quantile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i].Seconds()
}

func mbps(b int64, d time.Duration) float64 { return float64(b) / 1e6 / d.Seconds() }

// Markdown writes the table: per level and server, then the osim/nginx
// ratios (throughput higher is better, CPU per GB lower is better).
func (r *Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "%d MiB blob, Range chunks of %d MiB, rounds interleaved per level; osim-bootd serves it from its %s path\n\n",
		r.Size>>20, r.Chunk>>20, r.Path)
	fmt.Fprintln(w, "| readers | rounds | server | MB/s | reader p50 | reader p99 | server CPU s/GB |")
	fmt.Fprintln(w, "|---:|---:|---|---:|---:|---:|---:|")
	for _, l := range r.Levels {
		for _, s := range l.Servers {
			fmt.Fprintf(w, "| %d | %d | %s | %.0f | %.2f s | %.2f s | %.3f |\n", l.Readers, l.Rounds, s.Name, s.MBps, s.P50, s.P99, s.CPUPerGB)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| readers | throughput osim/nginx | p99 osim/nginx | CPU per GB osim/nginx |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|")
	for _, l := range r.Levels {
		if len(l.Servers) != 2 {
			continue
		}
		a, b := l.Servers[0], l.Servers[1]
		fmt.Fprintf(w, "| %d | %.2f | %.2f | %.2f |\n", l.Readers, a.MBps/b.MBps, a.P99/b.P99, a.CPUPerGB/b.CPUPerGB)
	}
}
