package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/manager"
)

const lockHint = `; to make a token while it runs, use "osimctl tokens create --role ROLE" or POST /api/v1/tokens with an admin token`

// runToken makes or lists tokens directly on the data dir (the manager
// must not be running: the MDB is opened exclusively).
func runToken(args []string) int {
	const usage = "usage: osim-manager token create --role ROLE [--name N] [--site S --uses N --ttl D] --data-dir DIR\n       osim-manager token list --data-dir DIR\n"
	if len(args) < 1 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	sub := args[0]
	switch sub {
	case "-h", "--help", "-help", "help":
		fmt.Print(usage)
		return 0
	}
	fs := flag.NewFlagSet("osim-manager token "+sub, flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "the MDB's directory")
	role := fs.String("role", "", "create: one of "+strings.Join(api.Roles, ", ")+" (not boot-server)")
	name := fs.String("name", "", "create: a name for the token (a join token: the one boot server name it registers)")
	site := fs.String("site", "", "create, role join: the site whose boot servers it registers (required)")
	uses := fs.Int("uses", 0, "create, role join: how many registrations it allows (default 1)")
	ttl := fs.String("ttl", "", "create, role join: how long it is valid (default 24h)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := envDefaults(fs); err != nil {
		fmt.Fprintf(os.Stderr, "osim-manager token: %v\n", err)
		return 2
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	switch sub {
	case "create":
		if *role == "" {
			fmt.Fprintln(os.Stderr, "osim-manager token create: --role is required")
			return 2
		}
	case "list":
	default:
		fmt.Fprintf(os.Stderr, "osim-manager token: unknown command %q (create or list)\n", sub)
		return 2
	}
	db, err := openStore(*dataDir, quiet, lockHint)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-manager token %s: %v\n", sub, err)
		return 1
	}
	defer db.Close()
	ctx := context.Background()
	if sub == "create" {
		info, err := manager.NewToken(ctx, db, api.TokenRequest{Role: *role, Name: *name, Site: *site, Uses: *uses, TTL: *ttl}, time.Now())
		if err != nil {
			fmt.Fprintf(os.Stderr, "osim-manager token create: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "token %s (role %s) created; the secret below is shown once\n", info.ID, info.Role)
		fmt.Println(info.Secret)
		return 0
	}
	toks, err := db.ListTokens(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-manager token list: %v\n", err)
		return 1
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tNAME\tBOOT SERVER\tSITE\tUSED\tEXPIRES\tCREATED")
	for _, t := range toks {
		used, expires := "", ""
		if t.Role == api.RoleJoin {
			used, expires = fmt.Sprintf("%d/%d", t.Used, t.Uses), t.Expires.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, t.Name, t.BootServer, t.Site, used, expires,
			t.Created.Format(time.RFC3339))
	}
	_ = tw.Flush()
	return 0
}
