package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"osim/controlplane/api"
)

func targetsPower(a *app, args []string) error {
	const help = "usage: osimctl targets power ID|MAC on|off|cycle [--network-boot] [--wait 2m]\n\n" +
		"Queues a power action; the boot server of the target's site runs it with the target's power spec.\n" +
		"--wait follows the request until it is done or failed.\n"
	fs := a.flags("targets.power", help)
	netboot := fs.Bool("network-boot", false, "boot from the network next (once, where the driver can)")
	wait := fs.Duration("wait", 0, "wait this long for the outcome (0: do not wait)")
	pos, err := a.parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	pr, err := a.client.RequestPower(a.ctx, pos[0], api.PowerActionRequest{Action: pos[1], NetworkBoot: *netboot})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*wait)
	for *wait > 0 && (pr.State == api.PowerPending || pr.State == api.PowerRunning) {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
		if pr, err = a.client.GetPowerRequest(a.ctx, pr.ID); err != nil {
			return err
		}
	}
	if a.json() {
		return a.printJSON(pr)
	}
	a.fields([][2]string{{"request", pr.ID}, {"target", pr.Target}, {"action", pr.Action}, {"state", pr.State},
		{"message", pr.Message}, {"boot server", pr.BootServer}})
	if pr.State == api.PowerFailed {
		return fmt.Errorf("power %s failed: %s", pr.Action, pr.Message)
	}
	return nil
}

func credentialsCreate(a *app, args []string) error {
	const help = "usage: osimctl credentials create --name N --username U --password-file F|-\n\n" +
		"Stores a BMC login (admin); the manager seals the password with its --credentials-key.\n" +
		"The password is read from a file or standard input, never from the command line.\n"
	fs := a.flags("credentials.create", help)
	var req api.CredentialRequest
	fs.StringVar(&req.Name, "name", "", "credential name, as a target's power.credentials names it")
	fs.StringVar(&req.Username, "username", "", "BMC user")
	pwFile := fs.String("password-file", "", "file holding the password (- reads standard input)")
	if _, err := a.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if req.Name == "" || req.Username == "" || *pwFile == "" {
		return usagef("osimctl credentials create", "credentials create: --name, --username and --password-file are required")
	}
	var b []byte
	var err error
	if *pwFile == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 4096))
	} else {
		b, err = os.ReadFile(*pwFile)
	}
	if err != nil {
		return fmt.Errorf("credentials create: password: %w", err)
	}
	req.Password = strings.TrimRight(string(b), "\r\n")
	var c api.Credential
	if err := a.client.Do(a.ctx, "POST", "/credentials", nil, req, &c); err != nil {
		return err
	}
	if a.json() {
		return a.printJSON(c)
	}
	a.fields([][2]string{{"name", c.Name}, {"username", c.Username}, {"created", c.Created.UTC().Format(time.RFC3339)}})
	return nil
}

func credentialsList(a *app, args []string) error {
	fs := a.flags("credentials.list", "usage: osimctl credentials list\n\nLists BMC credentials (admin); passwords are never shown.\n")
	if _, err := a.parse(fs, args, 0, 0); err != nil {
		return err
	}
	var l []api.Credential
	if err := a.client.Do(a.ctx, "GET", "/credentials", nil, nil, &l); err != nil {
		return err
	}
	if a.json() {
		return a.printJSON(l)
	}
	var rows [][]string
	for _, c := range l {
		rows = append(rows, []string{c.Name, c.Username, c.Created.UTC().Format(time.RFC3339)})
	}
	a.table([]string{"NAME", "USERNAME", "CREATED"}, rows)
	return nil
}

func credentialsRm(a *app, args []string) error {
	fs := a.flags("credentials.rm", "usage: osimctl credentials rm NAME\n\nDeletes a credential no target names (admin).\n")
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	return a.client.Do(a.ctx, "DELETE", "/credentials/"+url.PathEscape(pos[0]), nil, nil, nil)
}
