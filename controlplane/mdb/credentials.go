package mdb

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
)

// pCred + name → Credential JSON. The password is sealed by the manager
// (controlplane/secretbox) before it reaches the store: the MDB, its
// backups and its change log never hold it in the clear. Credentials are
// not synced: a boot server asks for one when it runs a power action.
const pCred = "mdb/cred/"

// Credential is a stored BMC login.
type Credential struct {
	api.Credential
	// Sealed is the password as the manager sealed it.
	Sealed []byte `json:"sealed"`
}

// PutCredential creates or replaces a credential.
func (d *DB) PutCredential(ctx context.Context, c Credential) (api.Credential, error) {
	if !api.ValidName(c.Name) {
		return api.Credential{}, invalidf("name: %q is not a valid credential name", c.Name)
	}
	if c.Username == "" || len(c.Username) > 64 {
		return api.Credential{}, invalidf("username: is required (at most 64 bytes)")
	}
	if len(c.Sealed) == 0 {
		return api.Credential{}, invalidf("password: is required")
	}
	err := d.update(ctx, func(w *wtx) error {
		var old Credential
		ok, err := badgerkv.GetJSON(w.txn, k(pCred, c.Name), &old)
		if err != nil {
			return err
		}
		c.Created = w.now
		if ok {
			c.Created = old.Created
		}
		return w.setJSON(k(pCred, c.Name), c)
	})
	return c.Credential, err
}

// GetCredential reads one credential, sealed password included.
func (d *DB) GetCredential(ctx context.Context, name string) (c Credential, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error {
		ok, err := badgerkv.GetJSON(txn, k(pCred, name), &c)
		if err == nil && !ok {
			err = fmt.Errorf("%w: credential %q", ErrNotFound, name)
		}
		return err
	})
	return c, err
}

// ListCredentials lists the credentials by name, without passwords.
func (d *DB) ListCredentials(ctx context.Context) (out []api.Credential, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error {
		return scan(txn, pCred, "", true, func(_ []byte, item *badger.Item) (bool, error) {
			var c Credential
			if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &c) }); err != nil {
				return false, err
			}
			out = append(out, c.Credential)
			return true, nil
		})
	})
	return out, err
}

// DeleteCredential deletes a credential no target names.
func (d *DB) DeleteCredential(ctx context.Context, name string) error {
	return d.updateFreeing(ctx, func(w *wtx) error {
		var c Credential
		ok, err := badgerkv.GetJSON(w.txn, k(pCred, name), &c)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: credential %q", ErrNotFound, name)
		}
		var user string
		err = scan(w.txn, pTarget, "", true, func(_ []byte, item *badger.Item) (bool, error) {
			var t api.Target
			if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &t) }); err != nil {
				return false, err
			}
			if t.Power != nil && t.Power.Credentials == name {
				user = t.Hostname
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if user != "" {
			return fmt.Errorf("%w: credential %q is named by target %s's power spec", ErrInUse, name, user)
		}
		return w.del(k(pCred, name))
	})
}

// checkPower checks that a power spec's credentials exist.
func checkPower(txn *badger.Txn, p *api.PowerSpec, prefix string) error {
	if p == nil || p.Credentials == "" {
		return nil
	}
	var c Credential
	ok, err := badgerkv.GetJSON(txn, k(pCred, p.Credentials), &c)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %spower.credentials: no credential %q (create it first: POST /api/v1/credentials)", ErrUnprocessable, prefix, p.Credentials)
	}
	return nil
}

// CredentialUsedInSite reports whether a target of site names the
// credential in its power spec: only that site's boot servers may have it.
func (d *DB) CredentialUsedInSite(ctx context.Context, name, site string) (used bool, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error {
		pre := k(pSiteTgt, site, "/")
		return scan(txn, string(pre), "", false, func(key []byte, _ *badger.Item) (bool, error) {
			t, err := getTarget(txn, string(key[len(pre):]))
			if err != nil {
				return false, err
			}
			used = t.Power != nil && t.Power.Credentials == name
			return !used, nil
		})
	})
	return used, err
}
