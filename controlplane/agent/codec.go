package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
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
//
// A boot server reads the Badger it wrote under earlier versions: these
// keys and their encodings (%016x generations, canonical MACs, JSON
// objects, 8-byte big-endian counters) must not change, byte for byte.
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

// removes reports whether c takes its object out of the view: a deleted
// target or image, an order deleted or ended (the view keeps live orders
// only). The store and the in-memory view both ask it.
func removes(c api.Change) bool {
	switch c.Kind {
	case api.ChangeTarget:
		return c.Deleted || c.Target == nil
	case api.ChangeOrder:
		return c.Deleted || c.Order == nil || c.Order.State.Final()
	case api.ChangeImage:
		return c.Deleted || c.Image == nil
	}
	return false
}

// keyOps is where a change's key operations go.
type keyOps interface {
	badgerkv.Writer
	// get returns what an earlier write left under k, nil when nothing.
	get(k []byte) ([]byte, error)
}

// txnOps applies changes inside a transaction, which reads its own
// writes: a target's old MAC index entries are found and removed.
type txnOps struct{ *badger.Txn }

func (t txnOps) get(k []byte) ([]byte, error) {
	it, err := t.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return it.ValueCopy(nil)
}

// freshBatch writes a snapshot page into a write batch over a generation
// nobody wrote before: there is nothing to read back.
type freshBatch struct{ *badger.WriteBatch }

func (freshBatch) get([]byte) ([]byte, error) { return nil, nil }

// putChange turns c into the key operations of generation gen. Kinds
// this agent does not know are skipped, to stay compatible with newer
// managers.
func putChange(kv keyOps, gen uint64, c api.Change) error {
	switch c.Kind {
	case api.ChangeTarget:
		tk := objKey(gen, 't', c.ID)
		b, err := kv.get(tk)
		if err != nil {
			return fmt.Errorf("agent: read %s: %w", tk, err)
		}
		if b != nil {
			var old api.Target
			if err := json.Unmarshal(b, &old); err != nil {
				return fmt.Errorf("agent: decode %s: %w", tk, err)
			}
			// A MAC that moved to another target keeps that one's entry.
			for _, m := range old.MACs {
				mk := objKey(gen, 'm', canonMAC(m))
				if v, err := kv.get(mk); err == nil && string(v) == c.ID {
					if err := kv.Delete(mk); err != nil {
						return err
					}
				}
			}
		}
		if removes(c) {
			return kv.Delete(tk)
		}
		if err := badgerkv.SetJSON(kv, tk, c.Target); err != nil {
			return err
		}
		for _, m := range c.Target.MACs {
			if err := kv.Set(objKey(gen, 'm', canonMAC(m)), []byte(c.ID)); err != nil {
				return err
			}
		}
	case api.ChangeOrder:
		if removes(c) {
			return kv.Delete(objKey(gen, 'o', c.ID))
		}
		return badgerkv.SetJSON(kv, objKey(gen, 'o', c.ID), c.Order)
	case api.ChangeImage:
		if removes(c) {
			return kv.Delete(objKey(gen, 'i', c.ID))
		}
		return badgerkv.SetJSON(kv, objKey(gen, 'i', c.ID), c.Image)
	}
	return nil
}

// readChange turns a key under a generation's prefix and its value back
// into the change that wrote it; ok is false for the MAC index and keys
// it does not know.
func readChange(rest, val []byte) (c api.Change, ok bool, err error) {
	if len(rest) < 2 || rest[1] != '/' {
		return c, false, nil
	}
	c.ID = string(rest[2:])
	switch rest[0] {
	case 't':
		c.Kind, c.Target = api.ChangeTarget, new(api.Target)
		err = json.Unmarshal(val, c.Target)
	case 'o':
		c.Kind, c.Order = api.ChangeOrder, new(api.Order)
		err = json.Unmarshal(val, c.Order)
	case 'i':
		c.Kind, c.Image = api.ChangeImage, new(api.Image)
		err = json.Unmarshal(val, c.Image)
	default:
		return c, false, nil
	}
	return c, err == nil, err
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
			var c api.Change
			var ok bool
			err := it.Item().Value(func(b []byte) (err error) {
				c, ok, err = readChange(k[len(p):], b)
				return err
			})
			if err != nil {
				return fmt.Errorf("agent: decode %s: %w", k, err)
			}
			if ok {
				v.apply(c)
			}
		}
		return nil
	})
	return v, err
}
