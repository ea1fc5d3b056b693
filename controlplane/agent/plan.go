package agent

import (
	"context"
	"fmt"
	"maps"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"osim/controlplane/api"
	"osim/controlplane/lifecycle"
	"osim/dataplane/httpboot"
)

var _ httpboot.Plans = (*Agent)(nil)

// scriptFetched reports the first fetch of an order attempt's script:
// what moves the order to booting at the manager.
func (l *localView) scriptFetched(t api.Target, o api.Order, mac string) {
	if !l.seen.pass(fmt.Sprintf("script/%s/%s/%d", mac, o.ID, o.Attempt), false, l.clock.Now()) {
		return
	}
	if err := l.q.Emit(api.Event{Type: api.EventFileServed, Target: t.ID, MAC: mac, Order: o.ID,
		Data: map[string]string{"file": "ipxe/" + mac}}); err != nil {
		l.log.Warn("file.served not buffered", "mac", mac, "order", o.ID, "err", err)
	}
}

// Plan is the httpboot.Plans: the install plan of a live disk-image order
// that boots (staged, booting, installing), from the local view; base is
// the boot server's absolute HTTP base.
func (l *localView) Plan(_ context.Context, order, base string) (any, error) {
	l.mu.RLock()
	o, ok := l.v.orders[order]
	t := l.v.targets[o.Target]
	img, haveImg := l.v.images[o.Image]
	l.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", httpboot.ErrUnknownOrder, order)
	}
	if !lifecycle.Boots(o.State) {
		return nil, fmt.Errorf("%w: order %s is %s; a plan is for an order that boots (staged, booting, installing)", httpboot.ErrNoPlan, o.ID, o.State)
	}
	if !haveImg {
		return nil, fmt.Errorf("agent: order %s: image %q is not in the local view", o.ID, o.Image)
	}
	if img.Format != api.FormatDisk {
		return nil, fmt.Errorf("%w: order %s: image %s is not a disk image (format %q): its installer needs no plan", httpboot.ErrNoPlan, o.ID, img.ID, img.Format)
	}
	return buildPlan(o, t, img, strings.TrimSuffix(base, "/"))
}

// buildPlan assembles a disk order's plan: a pure function of the view's
// objects.
func buildPlan(o api.Order, t api.Target, img api.Image, base string) (api.InstallPlan, error) {
	params := map[string]string{}
	maps.Copy(params, img.Defaults)
	maps.Copy(params, o.Params)
	var in api.InstallSettings
	if img.Install != nil {
		in = *img.Install
	}
	disk, err := diskRule(in.Disk, params)
	if err != nil {
		return api.InstallPlan{}, err
	}
	in.Disk = disk
	if in.OnFailure == "" {
		in.OnFailure = api.OnFailureWait
	}
	if in.Finish == "" {
		in.Finish = api.FinishReboot
	}
	fb, err := firstBoot(o, t, params)
	if err != nil {
		return api.InstallPlan{}, err
	}
	p := api.InstallPlan{Order: o.ID, Attempt: o.Attempt, Target: o.Target, Hostname: t.Hostname,
		Image: img.ID, ImageName: img.Name, ImageVersion: img.Version, Disk: disk, Install: in,
		Params: params, Procedures: img.Procedures, FirstBoot: fb, StatusURL: base + "/status/" + o.ID,
		Files: make([]api.PlanFile, 0, len(img.Files)), SecretParams: o.SecretParams}
	for _, f := range img.Files {
		p.Files = append(p.Files, api.PlanFile{Name: f.Name, URL: base + "/files/" + fileName(img.ID, f.Name),
			SHA256: f.SHA256, Size: f.Size, RawSize: f.RawSize, Compression: f.Compression, Role: f.Role})
	}
	return p, nil
}

// diskRule is the image's rule with the parameters disk.serial,
// disk.path, disk.min_size and disk.max_size applied over it.
func diskRule(d api.DiskRule, params map[string]string) (api.DiskRule, error) {
	if v, ok := params["disk.serial"]; ok {
		d.Serial = v
	}
	if v, ok := params["disk.path"]; ok {
		if v != "" && (!strings.HasPrefix(v, "/dev/") || path.Clean(v) != v) {
			return d, fmt.Errorf("%w: params.disk.path: %q: want an absolute path under /dev/", httpboot.ErrBadPlanInput, v)
		}
		d.Path = v
	}
	for _, s := range []struct {
		key string
		to  *int64
	}{{"disk.min_size", &d.MinSize}, {"disk.max_size", &d.MaxSize}} {
		v, ok := params[s.key]
		if !ok {
			continue
		}
		n, err := api.ParseSize(v)
		if err != nil {
			return d, fmt.Errorf("%w: params.%s: %v", httpboot.ErrBadPlanInput, s.key, err)
		}
		*s.to = n
	}
	if d.MaxSize > 0 && d.MinSize > d.MaxSize {
		return d, fmt.Errorf("%w: params.disk.min_size: %d is more than disk.max_size %d", httpboot.ErrBadPlanInput, d.MinSize, d.MaxSize)
	}
	return d, nil
}

// firstBoot renders the cloud-init NoCloud seed: meta-data names the
// instance (order and attempt: a retry is a new instance) and the host;
// user-data sets the host name and the SSH keys of the parameter
// ssh_authorized_keys (one per line). Every value is a YAML double-quoted
// scalar, so no value can add a key.
func firstBoot(o api.Order, t api.Target, params map[string]string) (api.FirstBoot, error) {
	var keys []string
	for _, line := range strings.Split(params["ssh_authorized_keys"], "\n") {
		if k := strings.TrimSpace(line); k != "" {
			keys = append(keys, k)
		}
	}
	for _, v := range append([]string{t.Hostname}, keys...) {
		if !utf8.ValidString(v) {
			return api.FirstBoot{}, fmt.Errorf("%w: params.ssh_authorized_keys: not valid UTF-8", httpboot.ErrBadPlanInput)
		}
	}
	var md, ud strings.Builder
	fmt.Fprintf(&md, "instance-id: %s\n", yamlString(o.ID+"-"+strconv.Itoa(o.Attempt)))
	ud.WriteString("#cloud-config\n")
	if t.Hostname != "" {
		fmt.Fprintf(&md, "local-hostname: %s\n", yamlString(t.Hostname))
		fmt.Fprintf(&ud, "hostname: %s\n", yamlString(t.Hostname))
	}
	if len(keys) > 0 {
		ud.WriteString("ssh_authorized_keys:\n")
		for _, k := range keys {
			fmt.Fprintf(&ud, "  - %s\n", yamlString(k))
		}
	}
	return api.FirstBoot{MetaData: md.String(), UserData: ud.String()}, nil
}

// yamlString quotes valid UTF-8 as a YAML double-quoted scalar: Go's
// escapes for it (\" \\ \n \t \xNN below 0x80, \uNNNN, \UNNNNNNNN) are
// YAML's too.
func yamlString(s string) string { return strconv.Quote(s) }

// statusData is an install.status event's data: the report's data, its
// step and the client it came from.
func statusData(s httpboot.Status) map[string]string {
	d := make(map[string]string, len(s.Data)+2)
	maps.Copy(d, s.Data)
	if s.Step != "" {
		d["step"] = s.Step
	}
	d["client"] = s.Client
	return d
}
