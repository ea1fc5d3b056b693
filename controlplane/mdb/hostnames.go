package mdb

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
)

// pHostname indexes targets by site and host name, so that a site never
// has two targets of one name (DNS names are case-insensitive: the key
// is lower case). Targets stored before the index existed are added when
// the store opens (indexHostnames).
const pHostname = "mdb/th/" // + site/hostname → target id

func hostnameKey(site, hostname string) []byte {
	return k(pHostname, site, "/", strings.ToLower(hostname))
}

// checkHostname returns ErrConflict if site has a target other than self
// named hostname.
func checkHostname(txn *badger.Txn, site, hostname, self, label string) error {
	owner, ok, err := badgerkv.GetString(txn, hostnameKey(site, hostname))
	if err != nil {
		return err
	}
	if ok && owner != self {
		return fmt.Errorf("%w: %shostname %s: site %s already has target %s of that name", ErrConflict, label, hostname, site, owner)
	}
	return nil
}

// moveHostname re-indexes target id from (oldSite, oldName) to (site,
// name); an empty oldSite indexes a new target.
func (w *wtx) moveHostname(id, oldSite, oldName, site, name string) error {
	if oldSite != "" {
		if err := w.del(hostnameKey(oldSite, oldName)); err != nil {
			return err
		}
	}
	if site == "" {
		return nil
	}
	return w.set(hostnameKey(site, name), []byte(id))
}

// sameHostnames returns ErrConflict when two specs name one host in one
// site.
func sameHostnames(site func(i int) string, hostname func(i int) string, n int, label func(i int) string) error {
	seen := make(map[string]int, n)
	for i := range n {
		key := site(i) + "/" + strings.ToLower(hostname(i))
		if j, dup := seen[key]; dup {
			return fmt.Errorf("%w: %shostname %s is also in specs[%d] (site %s)", ErrConflict, label(i), hostname(i), j, site(i))
		}
		seen[key] = i
	}
	return nil
}

// keyHostIndexed marks a store whose targets are all in the host name
// index (every store made since the index exists, and older ones once
// indexHostnames ran).
var keyHostIndexed = []byte("mdb/meta/hostidx")

// indexHostnames adds the targets stored before the index existed, once.
// Two old targets of one name in one site cannot both be indexed: the
// first keeps the name, the other is logged, and renaming it is the
// operator's to do.
func (d *DB) indexHostnames() error {
	var missing []api.Target
	err := d.db.View(func(txn *badger.Txn) error {
		if _, done, err := badgerkv.GetString(txn, keyHostIndexed); err != nil || done {
			return err
		}
		return scan(txn, pTarget, "", true, func(_ []byte, item *badger.Item) (bool, error) {
			var t api.Target
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &t) }); err != nil {
				return false, err
			}
			if t.Site == "" {
				return true, nil
			}
			owner, ok, err := badgerkv.GetString(txn, hostnameKey(t.Site, t.Hostname))
			if err != nil {
				return false, err
			}
			if !ok || owner != t.ID {
				missing = append(missing, t)
			}
			return true, nil
		})
	})
	if err != nil {
		return err
	}
	wb := d.db.NewWriteBatch()
	defer wb.Cancel()
	taken := map[string]string{}
	for _, t := range missing {
		key := string(hostnameKey(t.Site, t.Hostname))
		if other, dup := taken[key]; dup {
			d.log.Warn("two targets share a host name in a site; the second is not in the host name index: rename one",
				"site", t.Site, "hostname", t.Hostname, "target", t.ID, "other", other)
			continue
		}
		taken[key] = t.ID
		if err := wb.Set([]byte(key), []byte(t.ID)); err != nil {
			return err
		}
	}
	if err := wb.Set(keyHostIndexed, []byte("1")); err != nil {
		return err
	}
	return wb.Flush()
}
