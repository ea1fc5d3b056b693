// Package storeformat versions a Badger store's layout: one key holds the
// format the store was written in, so that a binary refuses a store a
// newer release wrote (it would misread it) and upgrades an older one in
// place. The MDB and the boot server's data dir each keep their own.
package storeformat

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"osim/internal/badgerkv"
)

// ErrTooNew: the store was written by a newer release.
var ErrTooNew = errors.New("store written by a newer osim")

// Migration rewrites a store from format From to From+1 inside one
// transaction: a crash leaves the store in either format, whole.
type Migration struct {
	From uint64
	Run  func(txn *badger.Txn) error
}

// Layout is one store's format: its key, the format this build writes,
// and the migrations from every older format to it.
type Layout struct {
	Name       string // "MDB", "boot server data dir": for errors
	Key        []byte
	Current    uint64
	Migrations []Migration
}

// Open checks db's format against l and brings an older store up to
// l.Current. A store without the key is either new or written before
// formats were recorded (format 1's layout, which they share): it is
// stamped with format 1 and migrated from there. It returns the format
// the store was in.
func (l Layout) Open(db *badger.DB) (found uint64, err error) {
	err = db.View(func(txn *badger.Txn) error {
		found, err = badgerkv.GetU64(txn, l.Key)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("%s: read its format: %w", l.Name, err)
	}
	if found > l.Current {
		return found, fmt.Errorf("%w: the %s is in format %d, this build reads formats 1 to %d: run the newer osim, or restore a backup taken before the upgrade", ErrTooNew, l.Name, found, l.Current)
	}
	from := max(found, 1)
	for v := from; v < l.Current; v++ {
		i := -1
		for j, m := range l.Migrations {
			if m.From == v {
				i = j
			}
		}
		if i < 0 {
			return found, fmt.Errorf("%s: no migration from format %d", l.Name, v)
		}
		if err := db.Update(func(txn *badger.Txn) error {
			if err := l.Migrations[i].Run(txn); err != nil {
				return err
			}
			return txn.Set(l.Key, badgerkv.U64(v+1))
		}); err != nil {
			return found, fmt.Errorf("%s: migrate format %d to %d: %w", l.Name, v, v+1, err)
		}
	}
	if found == 0 && l.Current == 1 {
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(l.Key, badgerkv.U64(1)) }); err != nil {
			return found, fmt.Errorf("%s: record its format: %w", l.Name, err)
		}
	}
	return found, nil
}

// Describe says what Open did, for the log: "" when the store was
// already in the current format.
func (l Layout) Describe(found uint64) string {
	switch {
	case found == l.Current:
		return ""
	case found == 0:
		return fmt.Sprintf("recorded the %s's on-disk format (%d)", l.Name, l.Current)
	default:
		return fmt.Sprintf("migrated the %s from format %d to %d", l.Name, found, l.Current)
	}
}

// TooNew refuses a store in a format newer than this build's, naming the
// release that wrote it (a backup's header says which).
func (l Layout) TooNew(format uint64, writer string) error {
	if format <= l.Current {
		return nil
	}
	if writer == "" {
		writer = "an unknown version"
	}
	return fmt.Errorf("%w: the backup's %s is in format %d, this build reads formats 1 to %d: restore it with the release that wrote it (%s) or a newer one",
		ErrTooNew, l.Name, format, l.Current, writer)
}

// CheckKey is TooNew for one key of a store being restored: the format
// key with a newer format is refused, any other key passes.
func (l Layout) CheckKey(key, val []byte, writer string) error {
	if string(key) != string(l.Key) {
		return nil
	}
	if len(val) != 8 {
		return fmt.Errorf("the backup's %s has a format key of %d bytes, not 8: not a store osim wrote", l.Name, len(val))
	}
	return l.TooNew(binary.BigEndian.Uint64(val), writer)
}
