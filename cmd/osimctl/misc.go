package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"osim/controlplane/api"
)

func bootserversList(a *app, args []string) error {
	fs := a.flags("bootservers.list", "usage: osimctl bootservers list\n")
	if _, err := a.parse(fs, args, 0, 0); err != nil {
		return err
	}
	bs, err := a.client.ListBootServers(a.ctx)
	if err != nil {
		return err
	}
	if a.json() {
		if bs == nil {
			bs = []api.BootServer{}
		}
		return a.printJSON(api.BootServerList{BootServers: bs})
	}
	now := a.now()
	rows := make([][]string, 0, len(bs))
	for _, b := range bs {
		rows = append(rows, []string{b.Name, b.Site, b.Health, age(now, b.LastHeartbeat), fmt.Sprint(b.SyncedRevision), b.Version, b.ID})
	}
	a.table([]string{"NAME", "SITE", "HEALTH", "HEARTBEAT", "SYNCED", "VERSION", "ID"}, rows)
	return nil
}

func eventsTail(a *app, args []string) error {
	const help = `usage: osimctl events tail [--follow] [--limit N] [--order O] [--target T] [--type TY] [--after N]

Prints the events after N (default 0: all), oldest first; --limit N prints only the newest N
(with --follow, then goes on from there). With --follow, keeps waiting for new ones (long-poll)
until interrupted. Columns are aligned (with --follow, to the widest ids osim makes). With
-o json: the event list as the API returns it, or, with --follow, one event object per line.
`
	fs := a.flags("events.tail", help)
	follow := fs.Bool("follow", false, "keep printing new events")
	fs.BoolVar(follow, "f", false, "short for --follow")
	var f api.EventFilter
	fs.StringVar(&f.Order, "order", "", "only this order's events")
	fs.StringVar(&f.Target, "target", "", "only this target's events")
	fs.StringVar(&f.Type, "type", "", "only events of this type (e.g. order.state, install.status)")
	after := fs.Uint64("after", 0, "start after this sequence number")
	limit := fs.Int("limit", 0, "only the newest N events (1..1000; 0: all)")
	if _, err := a.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *limit < 0 || *limit > 1000 {
		return usagef("osimctl events tail", "--limit %d: want 1..1000 (0: all)", *limit)
	}
	header := []string{"SEQ", "TIME", "TYPE", "ORDER", "TARGET", "MAC", "DETAIL"}
	row := func(e api.Event) []string {
		// Installer messages and facts come from the network: table and
		// line both print them printable.
		return []string{strconv.FormatUint(e.Seq, 10), fmtTime(e.Time), e.Type, dash(e.Order), dash(e.Target), dash(e.MAC), eventDetail(e)}
	}
	// With --follow rows come one at a time: fixed widths, those of the
	// ids osim makes (o-/t- and 12 hex digits) and of a MAC.
	line := func(e api.Event) {
		r := row(e)
		fmt.Fprintf(a.stdout, "%-8s %-20s %-16s %-14s %-14s %-17s %s\n", printable(r[0]), printable(r[1]), printable(r[2]),
			printable(r[3]), printable(r[4]), printable(r[5]), printable(r[6]))
	}
	var all api.EventList
	var rows [][]string
	all.Last = *after
	cur := *after
	if *limit > 0 {
		f.Limit, f.Newest = *limit, true
	} else {
		f.Limit = 1000
	}
	if *follow && !a.json() {
		fmt.Fprintf(a.stdout, "%-8s %-20s %-16s %-14s %-14s %-17s %s\n", "SEQ", "TIME", "TYPE", "ORDER", "TARGET", "MAC", "DETAIL")
	}
	for {
		if *follow && !f.Newest {
			f.Wait = a.longPoll()
		}
		l, err := a.client.ListEvents(a.ctx, cur, f)
		if err != nil {
			if *follow && a.ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, e := range l.Events {
			switch {
			case a.json() && *follow:
				b, _ := json.Marshal(e)
				fmt.Fprintln(a.stdout, string(b))
			case a.json():
				all.Events = append(all.Events, e)
			case *follow:
				line(e)
			default:
				rows = append(rows, row(e))
			}
		}
		if l.Last > cur {
			cur = l.Last
		}
		all.Last = cur
		if f.Newest { // the newest N once; a follow goes on after them
			f.Newest, f.Limit = false, 1000
			if !*follow {
				break
			}
			continue
		}
		if !*follow && len(l.Events) == 0 {
			break
		}
	}
	if a.json() {
		if all.Events == nil {
			all.Events = []api.Event{}
		}
		return a.printJSON(all)
	}
	a.table(header, rows)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func eventDetail(e api.Event) string {
	s := ""
	if e.Phase != "" {
		s += e.Phase + " "
	}
	if e.Type == api.EventInstallStatus && e.Phase == "installing" {
		s += fmt.Sprintf("%d%% ", e.Progress)
	}
	s += e.Message
	if len(e.Data) > 0 {
		if s != "" {
			s += " "
		}
		s += formatKV(e.Data)
	}
	return s
}

func tokensCreate(a *app, args []string) error {
	fs := a.flags("tokens.create", `usage: osimctl tokens create --role admin|operator|viewer|join [--name N]
       osimctl tokens create --role join --site SITE [--name BOOT-SERVER] [--uses N] [--ttl 24h]
A join token registers boot servers of one site: --name binds it to one boot server name,
--uses is how many it registers (default 1), --ttl how long it works (default 24h, at most 720h).
`)
	var r api.TokenRequest
	fs.StringVar(&r.Role, "role", "", "role of the token")
	fs.StringVar(&r.Name, "name", "", "a name to recognise it by; for a join token, the one boot server name it registers")
	fs.StringVar(&r.Site, "site", "", "join: the site it registers boot servers of (required)")
	fs.IntVar(&r.Uses, "uses", 0, "join: how many registrations it admits (default 1)")
	fs.StringVar(&r.TTL, "ttl", "", "join: how long it works, e.g. 24h (the default), 30m")
	if _, err := a.parse(fs, args, 0, 0); err != nil {
		return err
	}
	valid := false
	for _, v := range api.Roles {
		valid = valid || v == r.Role
	}
	if !valid {
		return usagef("osimctl tokens create", "--role %q: want one of admin, operator, viewer, boot-server, join", r.Role)
	}
	if r.Role == api.RoleJoin && r.Site == "" {
		return usagef("osimctl tokens create", "--site is required with --role join: a join token registers boot servers of one site")
	}
	if r.Role != api.RoleJoin && (r.Site != "" || r.Uses != 0 || r.TTL != "") {
		return usagef("osimctl tokens create", "--site, --uses and --ttl are for --role join only")
	}
	t, err := a.client.CreateToken(a.ctx, r)
	if err != nil {
		return err
	}
	if a.json() {
		return a.printJSON(t)
	}
	fields := [][2]string{{"id", t.ID}, {"role", t.Role}, {"name", t.Name}}
	if t.Role == api.RoleJoin {
		fields = append(fields, [2]string{"site", t.Site}, [2]string{"uses", strconv.Itoa(t.Uses)}, [2]string{"expires", fmtTime(t.Expires)})
	}
	a.fields(append(fields, [2]string{"token", t.Secret}))
	fmt.Fprintln(a.stderr, "The token is shown only now; store it.")
	return nil
}

func tokensList(a *app, args []string) error {
	fs := a.flags("tokens.list", "usage: osimctl tokens list\n")
	if _, err := a.parse(fs, args, 0, 0); err != nil {
		return err
	}
	ts, err := a.client.ListTokens(a.ctx)
	if err != nil {
		return err
	}
	if a.json() {
		if ts == nil {
			ts = []api.TokenInfo{}
		}
		return a.printJSON(api.TokenList{Tokens: ts})
	}
	rows := make([][]string, 0, len(ts))
	for _, t := range ts {
		rows = append(rows, []string{t.ID, t.Role, t.Name, t.BootServer, fmtTime(t.Created), joinBinding(t)})
	}
	a.table([]string{"ID", "ROLE", "NAME", "BOOT SERVER", "CREATED", "JOIN"}, rows)
	return nil
}

// joinBinding says what a join token still admits: "site lab, 0/1 used,
// expires …".
func joinBinding(t api.TokenInfo) string {
	if t.Role != api.RoleJoin {
		return ""
	}
	return fmt.Sprintf("site %s, %d/%d used, expires %s", t.Site, t.Used, t.Uses, fmtTime(t.Expires))
}

func tokensRm(a *app, args []string) error {
	fs := a.flags("tokens.rm", "usage: osimctl tokens rm ID\n")
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := a.client.DeleteToken(a.ctx, pos[0]); err != nil {
		return err
	}
	if !a.json() {
		fmt.Fprintf(a.stdout, "revoked token %s\n", pos[0])
	}
	return nil
}

// bootServer finds a boot server by id or name.
func (a *app) bootServer(ref string) (api.BootServer, error) {
	bss, err := a.client.ListBootServers(a.ctx)
	if err != nil {
		return api.BootServer{}, err
	}
	for _, b := range bss {
		if b.ID == ref || b.Name == ref {
			return b, nil
		}
	}
	return api.BootServer{}, fmt.Errorf("no boot server has the id or name %q", ref)
}

func bootserversShow(a *app, args []string) error {
	fs := a.flags("bootservers.show", "usage: osimctl bootservers show NAME|ID\n")
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	b, err := a.bootServer(pos[0])
	if err != nil {
		return err
	}
	if a.json() {
		return a.printJSON(b)
	}
	egress := "-"
	if b.EgressCeiling > 0 || b.Egress > 0 {
		egress = fmt.Sprintf("%.0f MB/s", b.Egress/1e6)
		if b.EgressCeiling > 0 {
			egress += fmt.Sprintf(" of %.0f MB/s", b.EgressCeiling/1e6)
		}
	}
	a.fields([][2]string{{"id", b.ID}, {"name", b.Name}, {"site", b.Site}, {"health", b.Health},
		{"heartbeat", age(a.now(), b.LastHeartbeat)}, {"interval", fmt.Sprintf("%gs (the manager's %gs)", b.HeartbeatInterval, b.ManagerHeartbeatInterval)},
		{"version", dash(b.Version)}, {"synced", fmt.Sprint(b.SyncedRevision)}, {"addresses", dash(strings.Join(b.Addresses, " "))},
		{"boot arches", dash(strings.Join(b.BootArches, " "))}, {"staged images", strconv.Itoa(len(b.StagedImages))}, {"egress", egress}})
	if len(b.Stats) > 0 {
		names := make([]string, 0, len(b.Stats))
		for n := range b.Stats {
			names = append(names, n)
		}
		sort.Strings(names)
		rows := make([][]string, 0, len(names))
		for _, n := range names {
			rows = append(rows, []string{n, strconv.FormatFloat(b.Stats[n], 'f', -1, 64)})
		}
		fmt.Fprintln(a.stdout)
		a.table([]string{"STAT", "VALUE"}, rows)
	}
	return nil
}

func bootserversRm(a *app, args []string) error {
	fs := a.flags("bootservers.rm", "usage: osimctl bootservers rm NAME|ID\n\nDeletes the boot server and its tokens: a replaced appliance's old record.\n")
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	b, err := a.bootServer(pos[0])
	if err != nil {
		return err
	}
	if err := a.client.Do(a.ctx, http.MethodDelete, "/bootservers/"+url.PathEscape(b.ID), nil, nil, nil); err != nil {
		return err
	}
	if !a.json() {
		fmt.Fprintf(a.stdout, "deleted boot server %s (%s)\n", b.Name, b.ID)
	}
	return nil
}
