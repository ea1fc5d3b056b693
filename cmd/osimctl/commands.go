package main

import (
	"fmt"
	"sort"
	"strings"

	"osim/internal/buildinfo"
)

// command is one verb of a noun: what it does and what runs it.
type command struct {
	summary string
	run     func(a *app, args []string) error
}

var commands = map[string]map[string]command{
	"targets": {
		"add":    {"register a target", targetsAdd},
		"list":   {"list targets", targetsList},
		"show":   {"show one target (by id, MAC or hostname)", targetsShow},
		"update": {"change a target's hostname, site, arch, address, labels or power", targetsUpdate},
		"rm":     {"delete a target (by id or MAC)", targetsRm},
		"import": {"create targets from a CSV or JSON file", targetsImport},
		"accept": {"make a discovered target a normal one (hostname, labels)", targetsAccept},
		"power":  {"power a target on, off or cycle it (its site's boot server runs it)", targetsPower},
	},
	"credentials": {
		"create": {"store a BMC login (the password from a file or stdin)", credentialsCreate},
		"list":   {"list BMC logins (never their passwords)", credentialsList},
		"rm":     {"delete a BMC login no target names", credentialsRm},
	},
	"images": {
		"register": {"upload an image's files and register it", imagesRegister},
		"list":     {"list images", imagesList},
		"show":     {"show one image", imagesShow},
		"rm":       {"delete an image", imagesRm},
	},
	"sites": {
		"get": {"show a site's settings", sitesGet},
		"set": {"set a site's default boot image", sitesSet},
	},
	"bootservers": {
		"list": {"list boot servers with health and sync state", bootserversList},
		"show": {"show one boot server (by name or id): health, versions, counters", bootserversShow},
		"rm":   {"delete a boot server and its tokens (by name or id)", bootserversRm},
	},
	"orders": {
		"create":  {"create installation orders", ordersCreate},
		"list":    {"list orders", ordersList},
		"show":    {"show one order with its history", ordersShow},
		"watch":   {"follow orders until they are final", ordersWatch},
		"cancel":  {"cancel a live order", ordersCancel},
		"retry":   {"start a new attempt of a failed or cancelled order", ordersRetry},
		"rollout": {"reimage in waves (create, list, show, pause, resume, abort): see osimctl rollouts", nil},
	},
	"rollouts": {
		"create": {"reimage in waves with a failure budget", rolloutCreate},
		"list":   {"list rollouts", rolloutList},
		"show":   {"show a rollout and its waves", rolloutShow},
		"pause":  {"start no new wave", rolloutAction("pause")},
		"resume": {"go on", rolloutAction("resume")},
		"abort":  {"end it (--cancel-running: and its running wave's orders)", rolloutAction("abort")},
	},
	"events": {
		"tail": {"print events (--follow to stream)", eventsTail},
	},
	"tokens": {
		"create": {"create a token (its secret is shown once)", tokensCreate},
		"list":   {"list tokens", tokensList},
		"rm":     {"revoke a token", tokensRm},
	},
}

func nounUsage(noun string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: osimctl %s VERB [flags] [args]\n\nverbs:\n", noun)
	verbs := make([]string, 0, len(commands[noun]))
	for v := range commands[noun] {
		verbs = append(verbs, v)
	}
	sort.Strings(verbs)
	for _, v := range verbs {
		fmt.Fprintf(&b, "  %-9s %s\n", v, commands[noun][v].summary)
	}
	fmt.Fprintf(&b, "\nRun \"osimctl %s VERB -h\" for its flags.\n", noun)
	return b.String()
}

func (a *app) dispatch(args []string) error {
	g := a.flags("osimctl", usage)
	showVersion := g.Bool("version", false, "print osimctl's version and exit")
	if err := g.Parse(args); err != nil {
		return a.flagError(g, "osimctl", err)
	}
	args = g.Args()
	if len(args) > 0 && args[0] == "completion" {
		return completion(a, args[1:])
	}
	if len(args) > 0 && args[0] == "man" {
		return manPage(a)
	}
	if *showVersion || (len(args) > 0 && args[0] == "version") {
		fmt.Fprintf(a.stdout, "osimctl %s\n", buildinfo.Get())
		return nil
	}
	if len(args) == 0 {
		fmt.Fprint(a.stderr, usage)
		return usagef("", "no command given")
	}
	noun := args[0]
	if noun == "help" {
		if len(args) > 1 {
			if _, ok := commands[args[1]]; ok {
				fmt.Fprint(a.stdout, nounUsage(args[1]))
				return nil
			}
			return usagef("osimctl", "help: unknown command %q", args[1])
		}
		fmt.Fprint(a.stdout, usage)
		return nil
	}
	verbs, ok := commands[noun]
	if !ok {
		return usagef("osimctl", "unknown command %q", noun)
	}
	if len(args) < 2 {
		fmt.Fprint(a.stderr, nounUsage(noun))
		return usagef("", "%s: no verb given", noun)
	}
	switch args[1] {
	case "-h", "--help", "help":
		fmt.Fprint(a.stdout, nounUsage(noun))
		return nil
	}
	cmd, ok := verbs[args[1]]
	if !ok {
		return usagef("osimctl "+noun, "%s: unknown verb %q", noun, args[1])
	}
	return cmd.run(a, args[2:])
}
