package main

import (
	"strings"
	"time"

	"osim/controlplane/api"
)

// targetState is the STATE column and field: discovered, boot-loop
// (since when), both, or empty for a normal target.
func targetState(t api.Target) string {
	var parts []string
	if t.State != "" {
		parts = append(parts, t.State)
	}
	if !t.BootLoop.IsZero() {
		parts = append(parts, "boot-loop since "+t.BootLoop.UTC().Format(time.RFC3339))
	}
	return strings.Join(parts, ", ")
}

func targetsAccept(a *app, args []string) error {
	const help = "usage: osimctl targets accept ID|MAC --hostname H [--label k=v ...]\n\n" +
		"Makes a discovered target (targets list --state discovered) a normal target that orders may name.\n"
	fs := a.flags("targets.accept", help)
	var req api.AcceptRequest
	labels := kvFlag{}
	fs.StringVar(&req.Hostname, "hostname", "", "host name (RFC 1123), unique in the target's site")
	fs.Var(labels, "label", "label k=v (repeatable)")
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if len(labels) > 0 {
		req.Labels = labels
	}
	if err := req.Validate(); err != nil {
		return usagef("osimctl targets accept", "targets accept: %v", err)
	}
	t, err := a.client.AcceptTarget(a.ctx, pos[0], req)
	if err != nil {
		return err
	}
	return a.showTarget(t)
}
