// Package badgerkv holds the few Badger value helpers that the MDB and
// the boot server's agent share: big-endian uint64 counters and JSON
// values. Each store keeps its own key layout; this package only encodes
// values, so what is on disk is whatever those encodings were before.
package badgerkv

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Writer is what a change is written through: a *badger.Txn or a
// *badger.WriteBatch (both have these two methods).
type Writer interface {
	Set(key, val []byte) error
	Delete(key []byte) error
}

var (
	_ Writer = (*badger.Txn)(nil)
	_ Writer = (*badger.WriteBatch)(nil)
)

// U64 encodes a counter: 8 bytes, big-endian, so keys built from it sort
// in numeric order.
func U64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// GetU64 reads a counter; a missing key is 0.
func GetU64(txn *badger.Txn, key []byte) (uint64, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	var v uint64
	err = item.Value(func(b []byte) error {
		if len(b) != 8 {
			return fmt.Errorf("%s holds %d bytes, want 8", key, len(b))
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	})
	return v, err
}

// GetJSON reads key into out; found is false when the key is absent.
func GetJSON(txn *badger.Txn, key []byte, out any) (found bool, err error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", key, err)
	}
	if err := item.Value(func(b []byte) error { return json.Unmarshal(b, out) }); err != nil {
		return false, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}

// JSON encodes v as the value of key (the key only names the error).
func JSON(key []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", key, err)
	}
	return b, nil
}

// SetJSON writes v as JSON under key.
func SetJSON(w Writer, key []byte, v any) error {
	b, err := JSON(key, v)
	if err != nil {
		return err
	}
	return w.Set(key, b)
}

// GetString reads key's value as a string; found is false when the key
// is absent.
func GetString(txn *badger.Txn, key []byte) (s string, found bool, err error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w", key, err)
	}
	v, err := item.ValueCopy(nil)
	return string(v), err == nil, err
}

// Exists reports whether key is present.
func Exists(txn *badger.Txn, key []byte) (bool, error) {
	_, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// DeleteKeys removes every key under prefix for which keep is nil or
// false, in write batches (so any number of keys fits), and returns how
// many it removed.
func DeleteKeys(db *badger.DB, prefix []byte, keep func(k []byte) bool) (int, error) {
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
			return 0, fmt.Errorf("delete %s: %w", k, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return 0, fmt.Errorf("delete under %s: %w", prefix, err)
	}
	return len(keys), nil
}

// All is every key of db with its value, as strings: for comparing two
// stores whole (a backup and its restore) and for dumps.
func All(db *badger.DB) (map[string]string, error) {
	out := map[string]string{}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(it.Item().Key())] = string(v)
		}
		return nil
	})
	return out, err
}
