package installer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"osim/controlplane/api"
	"osim/installer/blockdev"
	"osim/installer/customize"
	"osim/installer/disk"
	"osim/installer/firstboot"
	"osim/installer/gpt"
	"osim/installer/procedure"
	"osim/installer/report"
	"osim/installer/stream"
)

// installSteps runs the steps in order; the first error names its step.
func (r *run) installSteps(ctx context.Context, res *Result) (api.InstallPlan, error) {
	inv, err := r.inventory()
	if err != nil {
		return api.InstallPlan{}, fail(api.StepInventory, err)
	}
	facts := inv.Facts()
	r.say("inventory: %d CPUs, %d MiB, %s, %d disks, %d NICs", inv.CPUCount, inv.MemoryBytes>>20, inv.Firmware, len(inv.Disks), len(inv.NICs))
	if err := r.client.Status(ctx, report.Status{Phase: report.PhaseInstalling, Step: api.StepInventory, Facts: facts,
		Message: fmt.Sprintf("inventory: %d facts", len(facts))}); err != nil {
		return api.InstallPlan{}, fail(api.StepInventory, err)
	}

	plan, err := r.client.Plan(ctx)
	if err != nil {
		return plan, fail(api.StepPlan, err)
	}
	file, err := diskFile(plan)
	if err != nil {
		return plan, fail(api.StepPlan, err)
	}
	r.say("plan: %s %s, %s (%d bytes, %s)", plan.ImageName, plan.ImageVersion, file.Name, file.Size, orNone(file.Compression))

	need := file.RawSize
	if need <= 0 {
		need = file.Size
	}
	d, err := disk.Choose(inv.Disks, plan.Disk, need, r.cfg.DevRoot)
	if err != nil {
		return plan, fail(api.StepDisk, err)
	}
	res.Disk = r.devPath(d.Name)
	r.say("disk: %s (%d bytes, serial %q)", res.Disk, d.Size, d.Serial)
	r.status(ctx, report.Status{Phase: report.PhaseInstalling, Step: api.StepDisk, Message: "writing to " + res.Disk,
		Data: map[string]string{"disk": res.Disk, "size": strconv.FormatInt(d.Size, 10), "serial": d.Serial}})

	if err := r.procedures(ctx, plan, api.WhenPre, res.Disk, ""); err != nil {
		return plan, err
	}
	if res.Written, err = r.write(ctx, plan, file, res.Disk); err != nil {
		return plan, err
	}
	return plan, r.customize(ctx, plan, res.Disk)
}

func orNone(s string) string {
	if s == "" {
		return "uncompressed"
	}
	return s
}

// diskFile is the plan's one file of role disk.
func diskFile(p api.InstallPlan) (api.PlanFile, error) {
	var found []api.PlanFile
	for _, f := range p.Files {
		if f.Role == api.RoleDisk {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		return api.PlanFile{}, fmt.Errorf("plan of order %s has %d files of role %q, want 1", p.Order, len(found), api.RoleDisk)
	}
	if found[0].URL == "" {
		return api.PlanFile{}, fmt.Errorf("plan file %s has no URL", found[0].Name)
	}
	return found[0], nil
}

// procedures runs the plan's procedures of one kind, each reported.
func (r *run) procedures(ctx context.Context, plan api.InstallPlan, when, diskPath, root string) error {
	step := api.StepPre
	if when == api.WhenPost {
		step = api.StepPost
	}
	env := procedure.Env(plan.Order, diskPath, root, plan.Params)
	for _, p := range plan.Procedures {
		if p.When != when {
			continue
		}
		r.say("%s: running %s", step, p.Name)
		pr, err := procedure.Run(ctx, r.cfg.Shell, p, env)
		pr.OutputTail = scrubSecrets(pr.OutputTail, plan) // firstboot.go
		r.status(ctx, report.Status{Phase: report.PhaseInstalling, Step: step, Message: fmt.Sprintf("procedure %s exited %d", p.Name, pr.ExitCode),
			Data: r.procedureData(p.Name, pr.ExitCode, pr.OutputTail)})
		if err != nil {
			r.say("%s: output of %s (last %d bytes):\n%s", step, p.Name, len(pr.OutputTail), strings.TrimRight(pr.OutputTail, "\n"))
			return fail(step, err)
		}
	}
	return nil
}

// write streams the image onto the disk, verifies its hash, re-reads the
// partition table and grows the last partition if asked.
func (r *run) write(ctx context.Context, plan api.InstallPlan, file api.PlanFile, diskPath string) (int64, error) {
	// O_EXCL on a block device: refused while it is mounted or in use.
	dev, err := os.OpenFile(diskPath, os.O_RDWR|unix.O_EXCL, 0)
	if err != nil {
		return 0, fail(api.StepWrite, err)
	}
	defer dev.Close()
	s, err := stream.Open(ctx, stream.Options{URL: file.URL, Size: file.Size, SHA256: file.SHA256, Compression: file.Compression,
		Client: r.cfg.HTTP, Clock: r.cfg.Clock, GiveUp: r.cfg.StreamGiveUp,
		OnRetry: func(off int64, err error) { r.say("write: transfer interrupted at byte %d, resuming: %v", off, err) }})
	if err != nil {
		return 0, fail(api.StepWrite, err)
	}
	defer s.Close()
	r.say("write: streaming %s to %s", file.URL, diskPath)
	n, err := blockdev.Copy(ctx, dev, s, blockdev.CopyOptions{Clock: r.cfg.Clock, Every: r.cfg.ProgressEvery,
		OnProgress: func(p blockdev.Progress) { r.progress(ctx, s.BytesRead(), file, p) }})
	if errors.Is(err, stream.ErrMismatch) { // a corrupted file broke the decompressor
		return n, fail(api.StepVerify, err)
	}
	if err != nil {
		return n, fail(api.StepWrite, err)
	}
	if err := s.Verify(); err != nil {
		return n, fail(api.StepVerify, err)
	}
	if file.RawSize > 0 && n != file.RawSize {
		return n, fail(api.StepVerify, fmt.Errorf("wrote %d bytes, the image is %d", n, file.RawSize))
	}
	r.say("verify: sha256 %s matches (%d bytes written)", file.SHA256, n)
	r.status(ctx, report.Status{Phase: report.PhaseInstalling, Step: api.StepVerify, Progress: 100, Message: "sha256 matches",
		Data: map[string]string{"bytes_written": strconv.FormatInt(n, 10), "sha256": file.SHA256}})
	if err := blockdev.RereadPartitions(dev); err != nil {
		r.say("write: %v", err) // customize will say whether it mattered
	}
	if plan.Install.GrowLastPartition {
		if err := r.grow(dev); err != nil {
			return n, fail(api.StepWrite, err)
		}
	}
	return n, nil
}

func (r *run) grow(dev *os.File) error {
	size, err := blockdev.Size(dev)
	if err != nil {
		return err
	}
	p, err := gpt.Grow(dev, blockdev.SectorSize(dev), size)
	if err != nil {
		return err
	}
	if err := dev.Sync(); err != nil {
		return err
	}
	r.say("write: partition %d now ends at LBA %d (end of the disk)", p.Index, p.Last)
	if err := blockdev.RereadPartitions(dev); err != nil {
		r.say("write: %v", err)
	}
	return nil
}

// progress reports one write progress line; it runs on the progress
// goroutine, so its report is short-lived and never fails the install.
// Percent is of the image written when its raw size is known, else of
// the file read.
func (r *run) progress(ctx context.Context, read int64, file api.PlanFile, p blockdev.Progress) {
	done, total := read, file.Size
	if file.RawSize > 0 {
		done, total = p.Written, file.RawSize
	}
	pct := 0
	if total > 0 {
		pct = int(min(done*100/total, 99)) // 100 is for done
	}
	r.say("write %d%% (%d MiB of %d MiB, %.0f MB/s)", pct, done>>20, total>>20, p.Rate()/1e6)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ProgressEvery)
	defer cancel()
	rc := *r.client
	rc.Window, rc.OnRetry = r.cfg.ProgressEvery, nil
	rc.Status(ctx, report.Status{Phase: report.PhaseInstalling, Step: api.StepWrite, Progress: pct,
		Message: fmt.Sprintf("write %d%%", pct),
		Data: map[string]string{"bytes_read": strconv.FormatInt(read, 10), "bytes_total": strconv.FormatInt(file.Size, 10),
			"bytes_written": strconv.FormatInt(p.Written, 10), "rate_bytes_per_second": strconv.FormatInt(int64(p.Rate()), 10)}})
}

// customize writes the first-boot seed and runs post procedures with the
// installed root mounted. With neither to do, the root is not touched.
func (r *run) customize(ctx context.Context, plan api.InstallPlan, diskPath string) error {
	post := false
	for _, p := range plan.Procedures {
		post = post || p.When == api.WhenPost
	}
	fb := firstboot.Has(plan.Procedures)
	if plan.FirstBoot == (api.FirstBoot{}) && !post && !fb {
		r.say("customize: no first-boot data and no post procedures: the installed root is left untouched")
		return nil
	}
	var inner error
	err := customize.WithRoot(diskPath, r.cfg.MountDir, func(root string) error {
		if err := customize.WriteSeed(root, plan.FirstBoot); err != nil {
			inner = fail(api.StepCustomize, err)
			return inner
		}
		r.say("customize: NoCloud seed written under %s/%s", root, customize.SeedDir)
		r.status(ctx, report.Status{Phase: report.PhaseInstalling, Step: api.StepCustomize, Message: "first-boot seed written"})
		if err := r.writeFirstBoot(ctx, plan, root); err != nil {
			inner = fail(api.StepCustomize, err)
			return inner
		}
		inner = r.procedures(ctx, plan, api.WhenPost, diskPath, root)
		return inner
	})
	if inner != nil {
		return inner
	}
	if err != nil {
		return fail(api.StepCustomize, err)
	}
	return nil
}
