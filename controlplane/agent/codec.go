package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/dataplane/dhcp"
)

// Badger layout. The agent owns agent/ and evq/.
//
//	agent/cred                JSON credential (boot server id and token)
//	agent/rev                 synced revision N (uint64 big-endian)
//	agent/gen                 current generation of the view (uint64)
//	agent/g/<gen>/t/<id>      target JSON
//	agent/g/<gen>/m/<mac>     target id (MAC index)
//	agent/g/<gen>/o/<id>      live order JSON
//	agent/g/<gen>/i/<id>      image JSON
//	agent/staged/<order>/<n>  order.staged was queued for attempt n
//	agent/evseq               last OriginSeq handed out
//	evq/<seq big-endian>      an event waiting for upload
var (
	keyCred      = []byte("agent/cred")
	keyRev       = []byte("agent/rev")
	keyGen       = []byte("agent/gen")
	keyEvSeq     = []byte("agent/evseq")
	prefixGens   = []byte("agent/g/")
	prefixStaged = []byte("agent/staged/")
	prefixEvq    = []byte("evq/")
)

func genPrefix(gen uint64) []byte { return fmt.Appendf(nil, "agent/g/%016x/", gen) }

func objKey(gen uint64, kind byte, id string) []byte {
	k := genPrefix(gen)
	k = append(k, kind, '/')
	return append(k, id...)
}

func stagedKey(order string, attempt int) []byte {
	return fmt.Appendf(nil, "agent/staged/%s/%d", order, attempt)
}

func evqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(slices.Clone(prefixEvq), seq)
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// getU64 reads a counter; a missing key is 0.
func getU64(txn *badger.Txn, key []byte) (uint64, error) {
	it, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("agent: read %s: %w", key, err)
	}
	var v uint64
	err = it.Value(func(b []byte) error {
		if len(b) != 8 {
			return fmt.Errorf("agent: %s holds %d bytes, want 8", key, len(b))
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	})
	return v, err
}

func getJSON(txn *badger.Txn, key []byte, out any) (bool, error) {
	it, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("agent: read %s: %w", key, err)
	}
	return true, it.Value(func(b []byte) error {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("agent: decode %s: %w", key, err)
		}
		return nil
	})
}

func setJSON(txn *badger.Txn, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("agent: encode %s: %w", key, err)
	}
	return txn.Set(key, b)
}

// view is the in-memory mirror of the current generation; the seams
// answer from it. It changes only after the Badger transaction that
// holds the same change committed.
type view struct {
	targets map[string]api.Target
	byMAC   map[string]string // canonical MAC → target id
	orders  map[string]api.Order
	byTgt   map[string]string // target id → its live order id
	images  map[string]api.Image
	// nbps is, per image with nbp files, the NBP name per canonical arch:
	// built when the image enters the view, not on every DHCP lookup.
	nbps map[string]map[dhcp.Arch]string
	// full keeps whole objects; the seams' mirror drops what they never
	// read (labels, facts, order history) to stay small at 100,000 targets.
	full bool
}

func newView() *view {
	return &view{targets: map[string]api.Target{}, byMAC: map[string]string{}, orders: map[string]api.Order{},
		byTgt: map[string]string{}, images: map[string]api.Image{},
		nbps: map[string]map[dhcp.Arch]string{}}
}

// orderLeaves reports whether an order change removes the order from the view.
func orderLeaves(c api.Change) bool {
	return c.Deleted || c.Order == nil || c.Order.State.Final()
}

// apply changes the in-memory view the way applyTxn changed the store.
func (v *view) apply(c api.Change) {
	switch c.Kind {
	case api.ChangeTarget:
		if old, ok := v.targets[c.ID]; ok {
			for _, m := range old.MACs {
				if v.byMAC[m] == c.ID {
					delete(v.byMAC, m)
				}
			}
			delete(v.targets, c.ID)
		}
		if !c.Deleted && c.Target != nil {
			// The seams need neither labels nor facts: keep the mirror
			// small (100,000 targets), Badger has the whole object.
			t := *c.Target
			if !v.full {
				t.Labels, t.Facts = nil, nil
			}
			v.targets[c.ID] = t
			for _, m := range c.Target.MACs {
				v.byMAC[canonMAC(m)] = c.ID
			}
		}
	case api.ChangeOrder:
		if old, ok := v.orders[c.ID]; ok {
			if v.byTgt[old.Target] == c.ID {
				delete(v.byTgt, old.Target)
			}
			delete(v.orders, c.ID)
		}
		if !orderLeaves(c) {
			o := *c.Order
			if !v.full {
				o.History = nil
			}
			v.orders[c.ID] = o
			v.byTgt[c.Order.Target] = c.ID
		}
	case api.ChangeImage:
		delete(v.images, c.ID)
		delete(v.nbps, c.ID)
		if !c.Deleted && c.Image != nil {
			v.images[c.ID] = *c.Image
			if nbp := nbpFiles(*c.Image); len(nbp) > 0 {
				v.nbps[c.ID] = nbp
			}
		}
	}
}

func canonMAC(m string) string {
	if c, err := api.CanonicalMAC(m); err == nil {
		return c
	}
	return strings.ToLower(m)
}

// applyTxn writes one change into generation gen inside txn.
func applyTxn(txn *badger.Txn, gen uint64, c api.Change) error {
	switch c.Kind {
	case api.ChangeTarget:
		var old api.Target
		found, err := getJSON(txn, objKey(gen, 't', c.ID), &old)
		if err != nil {
			return err
		}
		if found {
			for _, m := range old.MACs {
				mk := objKey(gen, 'm', canonMAC(m))
				if it, err := txn.Get(mk); err == nil {
					if v, _ := it.ValueCopy(nil); string(v) == c.ID {
						if err := txn.Delete(mk); err != nil {
							return err
						}
					}
				}
			}
		}
		if c.Deleted || c.Target == nil {
			return txn.Delete(objKey(gen, 't', c.ID))
		}
		if err := setJSON(txn, objKey(gen, 't', c.ID), c.Target); err != nil {
			return err
		}
		for _, m := range c.Target.MACs {
			if err := txn.Set(objKey(gen, 'm', canonMAC(m)), []byte(c.ID)); err != nil {
				return err
			}
		}
	case api.ChangeOrder:
		if orderLeaves(c) {
			return txn.Delete(objKey(gen, 'o', c.ID))
		}
		return setJSON(txn, objKey(gen, 'o', c.ID), c.Order)
	case api.ChangeImage:
		if c.Deleted || c.Image == nil {
			return txn.Delete(objKey(gen, 'i', c.ID))
		}
		return setJSON(txn, objKey(gen, 'i', c.ID), c.Image)
	}
	return nil // a kind this agent does not know: skip, stay compatible
}

// loadView reads generation gen from the store.
func loadView(db *badger.DB, gen uint64, full bool) (*view, error) {
	v := newView()
	v.full = full
	p := genPrefix(gen)
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			rest := k[len(p):]
			if len(rest) < 2 || rest[1] != '/' {
				continue
			}
			var c api.Change
			c.ID = string(rest[2:])
			err := it.Item().Value(func(b []byte) error {
				switch rest[0] {
				case 't':
					c.Kind, c.Target = api.ChangeTarget, new(api.Target)
					return json.Unmarshal(b, c.Target)
				case 'o':
					c.Kind, c.Order = api.ChangeOrder, new(api.Order)
					return json.Unmarshal(b, c.Order)
				case 'i':
					c.Kind, c.Image = api.ChangeImage, new(api.Image)
					return json.Unmarshal(b, c.Image)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("agent: decode %s: %w", k, err)
			}
			if c.Kind != "" {
				v.apply(c)
			}
		}
		return nil
	})
	return v, err
}

// deleteKeys removes every key under prefix for which keep is false, in
// write batches (so any number of keys fits).
func deleteKeys(db *badger.DB, prefix []byte, keep func(k []byte) bool) (int, error) {
	var keys [][]byte
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := it.Item().Key(); keep == nil || !keep(k) {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
		}
		return nil
	})
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return 0, fmt.Errorf("agent: delete %s: %w", k, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return 0, fmt.Errorf("agent: delete under %s: %w", prefix, err)
	}
	return len(keys), nil
}

// readView returns the persisted current view, sorted by id.
func (a *Agent) readView() (targets []api.Target, orders []api.Order, images []api.Image, rev uint64, err error) {
	var gen uint64
	err = a.db.View(func(txn *badger.Txn) error {
		if rev, err = getU64(txn, keyRev); err != nil {
			return err
		}
		gen, err = getU64(txn, keyGen)
		return err
	})
	if err != nil {
		return nil, nil, nil, 0, err
	}
	v, err := loadView(a.db, gen, true)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	for _, t := range v.targets {
		targets = append(targets, t)
	}
	for _, o := range v.orders {
		orders = append(orders, o)
	}
	for _, i := range v.images {
		images = append(images, i)
	}
	slices.SortFunc(targets, func(a, b api.Target) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(orders, func(a, b api.Order) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(images, func(a, b api.Image) int { return strings.Compare(a.ID, b.ID) })
	return targets, orders, images, rev, nil
}
