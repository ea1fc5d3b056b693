package installer

import (
	"context"
	"fmt"
	"strings"

	"osim/controlplane/api"
	"osim/installer/firstboot"
	"osim/installer/report"
)

// writeFirstBoot writes the plan's first-boot procedures, their runner
// and its unit into the installed root (installer/firstboot): the runner
// reports to this boot server with this order's token.
func (r *run) writeFirstBoot(ctx context.Context, plan api.InstallPlan, root string) error {
	if !firstboot.Has(plan.Procedures) {
		return nil
	}
	err := firstboot.Write(root, firstboot.Config{BaseURL: r.client.Base, Order: r.client.Order, Token: r.client.Token,
		Procedures: plan.Procedures, Params: plan.Params, Secrets: plan.SecretParams})
	if err != nil {
		return err
	}
	n := 0
	for _, p := range plan.Procedures {
		if p.When == api.WhenFirstBoot {
			n++
		}
	}
	r.say("customize: %d first-boot procedures written under %s/%s (unit %s)", n, root, firstboot.Dir, firstboot.UnitName)
	r.status(ctx, report.Status{Phase: report.PhaseInstalling, Step: api.StepCustomize,
		Message: fmt.Sprintf("%d first-boot procedures written", n)})
	return nil
}

// scrubSecrets replaces the values of the plan's secret parameters in
// a procedure's output by api.SecretMask: a procedure may echo its
// environment, and its output tail goes to the console and the manager.
func scrubSecrets(s string, plan api.InstallPlan) string {
	for _, k := range plan.SecretParams {
		if v := plan.Params[k]; v != "" {
			s = strings.ReplaceAll(s, v, api.SecretMask)
		}
	}
	return s
}
