package mdb

import (
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// pHostname indexes targets by site and host name, so that a site never
// has two targets of one name (DNS names are case-insensitive: the key
// is lower case). Targets stored before the index existed are not in it
// until they are updated.
const pHostname = "mdb/th/" // + site/hostname → target id

func hostnameKey(site, hostname string) []byte {
	return k(pHostname, site, "/", strings.ToLower(hostname))
}

// checkHostname returns ErrConflict if site has a target other than self
// named hostname.
func checkHostname(txn *badger.Txn, site, hostname, self, label string) error {
	owner, ok, err := getString(txn, hostnameKey(site, hostname))
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
