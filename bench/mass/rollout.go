package mass

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"osim/bench/internal/procstat"
	"osim/controlplane/api"
	"osim/internal/bootd"
	"osim/internal/promtext"
	"osim/internal/pxeclient"
)

// RolloutOptions is osim-bench -rollout: the targets are not powered on
// by the bench but by osim. A rollout made through the manager's API
// starts them wave by wave; the boot server's wol driver wakes each
// machine (a magic frame on the segment, which the simulated machine's
// listener receives) once its order is staged; each then boots and
// installs the image, and a share of them has a disk that fails.
type RolloutOptions struct {
	WaveSize           int
	FailRate           float64 // share of targets whose disk fails mid-write
	FailureBudget      int
	WaveFailurePercent int
	MaxPerBootServer   int
	EgressCeiling      string // osim-bootd's http.egress_ceiling; "": none
	Seed               uint64 // picks the failing targets
}

// RolloutReport is what a rollout run measured; also the -json output.
type RolloutReport struct {
	Mode          string  `json:"mode"`
	Started       string  `json:"started"`
	Targets       int     `json:"targets"`
	ImageBytes    int64   `json:"image_bytes"`
	WaveSize      int     `json:"wave_size"`
	FailRate      float64 `json:"fail_rate"`
	FailureBudget int     `json:"failure_budget"`
	EgressCeiling string  `json:"egress_ceiling,omitempty"`
	Injected      int     `json:"injected_failures"` // targets given a failing disk

	State  string       `json:"state"`
	Reason string       `json:"reason,omitempty"`
	Waves  []WaveFigure `json:"waves"`
	// StoppedAfter is the wave the budget stopped the rollout in (0: it
	// was not stopped) and Failures the failed orders then.
	StoppedAfter int `json:"stopped_after_wave,omitempty"`
	Failures     int `json:"failures"`

	Woken      int   `json:"woken"` // machines osim powered on
	WOLFrames  int64 `json:"wol_frames"`
	Done       int   `json:"done"`
	Failed     int   `json:"failed"`
	NeverWoken int   `json:"never_woken"`
	// TimeToDone is wake to the installer's last report, per machine.
	TimeToDone Dist `json:"wake_to_end_s"`
	// MaxInFlight is the most orders in flight the manager's admission
	// showed at once; PeakEgress the highest egress the boot server's
	// heartbeats measured (10^6 bytes/s); EgressMBps the mean over the run.
	MaxInFlight    int     `json:"max_in_flight"`
	PeakEgressMBps float64 `json:"peak_egress_mb_per_s"`
	EgressBytes    float64 `json:"egress_bytes"`
	EgressMBps     float64 `json:"egress_mb_per_s"`

	Server  ServerUsage `json:"server"`
	Manager ServerUsage `json:"manager"`
	Notes   []string    `json:"notes,omitempty"`

	SetupSeconds float64 `json:"setup_s"`
	RunSeconds   float64 `json:"rollout_s"` // rollout created → ended, every woken machine done
	TotalSeconds float64 `json:"total_s"`
}

// WaveFigure is one wave of the rollout.
type WaveFigure struct {
	Targets  int     `json:"targets"`
	Admitted int     `json:"admitted"`
	Done     int     `json:"done"`
	Failed   int     `json:"failed"`
	Other    int     `json:"other"`
	Start    float64 `json:"start_s"` // from the rollout's creation
	Seconds  float64 `json:"seconds"` // its start to its end (0: did not end)
	State    string  `json:"state"`
}

// RunRollout is osim-bench -rollout.
func RunRollout(ctx context.Context, o Options, r RolloutOptions) (*RolloutReport, error) {
	o.defaults()
	if o.ImageSize <= 0 {
		o.ImageSize = 16 << 20
	}
	if r.WaveSize <= 0 {
		r.WaveSize = 250
	}
	t0 := time.Now()
	ctx, lab, done, err := openLab(ctx, o)
	if err != nil {
		return nil, err
	}
	defer done()
	rep := &RolloutReport{Mode: "rollout", Started: t0.UTC().Format(time.RFC3339), Targets: o.N, ImageBytes: o.ImageSize,
		WaveSize: r.WaveSize, FailRate: r.FailRate, FailureBudget: r.FailureBudget, EgressCeiling: r.EgressCeiling}
	w, err := startServers(ctx, o, lab, func(c *bootd.Config) { c.HTTP.EgressCeiling = r.EgressCeiling })
	if err != nil {
		return nil, err
	}
	c := w.c
	ts := makeTargets(o.N, o.UEFI)
	// Woken by the boot server's wol driver on its end of the veth.
	if err := registerTargets(ctx, c, ts, &api.PowerSpec{Driver: "wol", Interface: "vs"}); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(r.Seed, 0x05eb))
	failing := make([]bool, len(ts))
	for i := range failing {
		if failing[i] = rng.Float64() < r.FailRate; failing[i] {
			rep.Injected++
		}
	}
	shared, err := pxeclient.OpenSharedDHCP("vc", lab.ClientDo)
	if err != nil {
		return nil, err
	}
	defer shared.Close()
	before, err := promtext.Get(ctx, lab.HTTP(), w.metricsURL)
	if err != nil {
		return nil, err
	}
	cpu0, _ := w.bs.CPU()
	mcpu0, _ := w.mgr.CPU()

	// A machine boots when its magic frame comes (once: the driver sends
	// three frames, a retried power request more).
	var wg sync.WaitGroup
	var woken, ended atomic.Int64
	started := make([]atomic.Bool, len(ts))
	wake := func(mac net.HardwareAddr) {
		if len(mac) != 6 {
			return
		}
		i := int(mac[4])<<8 | int(mac[5]) // macOf's numbering
		if i >= len(ts) || !bytes.Equal(mac, ts[i].mac) || !started[i].CompareAndSwap(false, true) {
			return
		}
		woken.Add(1)
		t := ts[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ended.Add(1)
			img := &pxeclient.ImageConfig{DiskSize: 4 * o.ImageSize}
			if failing[t.i] {
				img.Sink = func(string, api.PlanFile) (io.WriteCloser, error) { return &failingDisk{left: o.ImageSize / 3}, nil }
			}
			t.start = time.Now()
			t.res, t.err = pxeclient.Boot(ctx, pxeclient.Config{Interface: "vc", MAC: t.mac, Firmware: t.fw, Do: lab.ClientDo,
				Shared: shared, BindLease: true, Install: &pxeclient.InstallConfig{Image: img}})
			t.end = time.Now()
		}()
	}
	wl, err := listenWOL(lab.ClientDo, "vc", wake)
	if err != nil {
		return nil, err
	}
	defer wl.close()
	rep.SetupSeconds = time.Since(t0).Seconds()

	fmt.Fprintf(o.Log, "%d targets (%d with a failing disk), waves of %d; starting the rollout\n", o.N, rep.Injected, r.WaveSize)
	tRun := time.Now()
	var ro api.Rollout
	if err := c.Do(ctx, "POST", "/rollouts", nil, api.RolloutRequest{
		Orders: api.OrderRequest{Selector: "bench=mass", Image: w.img.ID, BootImage: w.bootImg.ID, All: true},
		Policy: api.RolloutPolicy{WaveSize: r.WaveSize, FailureBudget: r.FailureBudget, WaveFailurePercent: r.WaveFailurePercent,
			MaxInFlightPerBootServer: r.MaxPerBootServer}}, &ro); err != nil {
		return nil, fmt.Errorf("mass: create the rollout: %w", err)
	}
	lastLine := time.Time{}
	for {
		if err := c.Do(ctx, "GET", "/rollouts/"+ro.ID, nil, nil, &ro); err != nil {
			return nil, fmt.Errorf("mass: rollout %s: %w", ro.ID, err)
		}
		for _, a := range ro.Admission {
			rep.MaxInFlight = max(rep.MaxInFlight, a.InFlight)
		}
		if bss, err := c.ListBootServers(ctx); err == nil {
			for _, b := range bss {
				rep.PeakEgressMBps = max(rep.PeakEgressMBps, b.Egress/1e6)
			}
		}
		final := ro.State != api.RolloutRunning && ro.State != api.RolloutPaused
		if o.Progress != nil && (final || time.Since(lastLine) > 5*time.Second) {
			lastLine = time.Now()
			fmt.Fprintf(o.Progress, "%.0fs rollout %s: wave %d of %d, %d failed; %d woken, %d ended; %s\n", time.Since(tRun).Seconds(),
				ro.State, min(ro.Current+1, len(ro.Waves)), len(ro.Waves), ro.Failures, woken.Load(), ended.Load(), ro.Holding)
		}
		if final && ended.Load() == woken.Load() {
			break
		}
		select {
		case <-ctx.Done():
			rep.Notes = append(rep.Notes, fmt.Sprintf("gave up: %v (rollout %s, wave %d)", ctx.Err(), ro.State, ro.Current+1))
			wg.Wait()
			return rep, errors.Join(ctx.Err(), errors.New("mass: the rollout did not end in time"))
		case <-time.After(time.Second):
		}
	}
	rep.RunSeconds = time.Since(tRun).Seconds()
	wg.Wait()

	after, err := promtext.Get(ctx, lab.HTTP(), w.metricsURL)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"osim_httpboot_response_bytes_total", "osim_tftp_bytes_sent_total"} {
		rep.EgressBytes += after.Sum(name) - before.Sum(name)
	}
	rep.EgressMBps = rep.EgressBytes / 1e6 / rep.RunSeconds
	cpu1, _ := w.bs.CPU()
	mcpu1, _ := w.mgr.CPU()
	rep.Server = ServerUsage{Name: "osim-bootd", CPUSeconds: (cpu1 - cpu0).Seconds()}
	if hwm, err := procstat.HWM(w.bs.PID); err == nil {
		rep.Server.PeakRSSMiB = float64(hwm) / (1 << 20)
	}
	rep.Manager = ServerUsage{Name: "osim-manager", CPUSeconds: (mcpu1 - mcpu0).Seconds()}
	if hwm, err := procstat.HWM(w.mgr.PID); err == nil {
		rep.Manager.PeakRSSMiB = float64(hwm) / (1 << 20)
	}
	rep.State, rep.Reason, rep.Failures = ro.State, ro.Reason, ro.Failures
	if ro.State == api.RolloutStopped {
		rep.StoppedAfter = ro.Current
	}
	for _, wv := range ro.Waves {
		f := WaveFigure{Targets: len(wv.Targets), Admitted: len(wv.Admitted), Done: wv.Done, Failed: wv.Failed, Other: wv.Other, State: wv.State}
		if !wv.Started.IsZero() {
			f.Start = wv.Started.Sub(ro.Created).Seconds()
			if !wv.Ended.IsZero() {
				f.Seconds = wv.Ended.Sub(wv.Started).Seconds()
			}
		}
		rep.Waves = append(rep.Waves, f)
	}
	rep.Woken, rep.WOLFrames = int(woken.Load()), wl.frames.Load()
	var times []float64
	for i, t := range ts {
		switch {
		case !started[i].Load():
			rep.NeverWoken++
			continue
		case t.res != nil && t.res.Installed == "done":
			rep.Done++
		default:
			rep.Failed++
			if !failing[i] {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s failed without an injected failure: %v", t.mac, t.err))
			}
		}
		times = append(times, t.end.Sub(t.start).Seconds())
	}
	rep.TimeToDone = dist(times)
	rep.TotalSeconds = time.Since(t0).Seconds()
	return rep, nil
}

// failingDisk is a simulated disk that breaks after left bytes: the
// installer's write fails as a real I/O error would make it.
type failingDisk struct{ left int64 }

func (d *failingDisk) Write(p []byte) (int, error) {
	if int64(len(p)) > d.left {
		n := int(d.left)
		d.left = 0
		return n, errors.New("simulated disk error: I/O error writing sector")
	}
	d.left -= int64(len(p))
	return len(p), nil
}

func (d *failingDisk) Close() error { return nil }

// Print writes the report as text.
func (r *RolloutReport) Print(w io.Writer) {
	fmt.Fprintf(w, "rollout of %d simulated targets, image %d MiB, waves of %d, injected failures %d (%.1f%%), budget %d, egress ceiling %q\n",
		r.Targets, r.ImageBytes>>20, r.WaveSize, r.Injected, 100*r.FailRate, r.FailureBudget, r.EgressCeiling)
	fmt.Fprintf(w, "state %s %s; failures %d; woken %d (%d magic frames), done %d, failed %d, never woken %d\n",
		r.State, r.Reason, r.Failures, r.Woken, r.WOLFrames, r.Done, r.Failed, r.NeverWoken)
	fmt.Fprintf(w, "rollout %.1f s (setup %.1f s); wake → end p50 %.1f s, p99 %.1f s, max %.1f s\n",
		r.RunSeconds, r.SetupSeconds, r.TimeToDone.P50, r.TimeToDone.P99, r.TimeToDone.Max)
	fmt.Fprintf(w, "egress %.2f GB, %.0f MB/s mean, %.0f MB/s peak heartbeat; max in flight %d\n",
		r.EgressBytes/1e9, r.EgressMBps, r.PeakEgressMBps, r.MaxInFlight)
	fmt.Fprintf(w, "osim-bootd %.1f s CPU, %.0f MiB peak RSS; osim-manager %.1f s CPU, %.0f MiB peak RSS\n",
		r.Server.CPUSeconds, r.Server.PeakRSSMiB, r.Manager.CPUSeconds, r.Manager.PeakRSSMiB)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "wave\ttargets\tadmitted\tdone\tfailed\tother\tstart s\tseconds\tstate\t")
	for i, f := range r.Waves {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%s\t\n", i+1, f.Targets, f.Admitted, f.Done, f.Failed, f.Other, f.Start, f.Seconds, f.State)
	}
	tw.Flush()
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}
