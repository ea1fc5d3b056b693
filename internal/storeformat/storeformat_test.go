package storeformat

import (
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"osim/internal/badgerkv"
)

var key = []byte("test/format")

func openDB(t *testing.T) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil).WithInMemory(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func format(t *testing.T, db *badger.DB) uint64 {
	t.Helper()
	var v uint64
	if err := db.View(func(txn *badger.Txn) (err error) { v, err = badgerkv.GetU64(txn, key); return err }); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAStoreWithoutAFormatIsStampedWithTheFirst(t *testing.T) {
	db := openDB(t)
	found, err := Layout{Name: "test store", Key: key, Current: 1}.Open(db)
	if err != nil || found != 0 {
		t.Fatalf("Open: found %d, %v", found, err)
	}
	if v := format(t, db); v != 1 {
		t.Fatalf("format after Open: %d, want 1", v)
	}
	if found, err := (Layout{Name: "test store", Key: key, Current: 1}).Open(db); err != nil || found != 1 {
		t.Fatalf("second Open: found %d, %v", found, err)
	}
}

func TestANewerStoreIsRefusedAndLeftAlone(t *testing.T) {
	db := openDB(t)
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(key, badgerkv.U64(3)) }); err != nil {
		t.Fatal(err)
	}
	_, err := Layout{Name: "test store", Key: key, Current: 2}.Open(db)
	if !errors.Is(err, ErrTooNew) {
		t.Fatalf("Open of a format-3 store by a format-2 build: %v, want ErrTooNew", err)
	}
	t.Log(err)
	if v := format(t, db); v != 3 {
		t.Fatalf("format after the refusal: %d, want 3 untouched", v)
	}
}

func TestAnOlderStoreIsMigratedOneStepAtATime(t *testing.T) {
	db := openDB(t)
	// A format-1 store (no key yet) holding a value the migration to 2 renames.
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("old"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	var ran []uint64
	l := Layout{Name: "test store", Key: key, Current: 3, Migrations: []Migration{
		{From: 2, Run: func(txn *badger.Txn) error { ran = append(ran, 2); return nil }},
		{From: 1, Run: func(txn *badger.Txn) error {
			ran = append(ran, 1)
			if err := txn.Set([]byte("new"), []byte("v")); err != nil {
				return err
			}
			return txn.Delete([]byte("old"))
		}},
	}}
	if _, err := l.Open(db); err != nil {
		t.Fatal(err)
	}
	if len(ran) != 2 || ran[0] != 1 || ran[1] != 2 {
		t.Fatalf("migrations ran %v, want 1 then 2", ran)
	}
	if v := format(t, db); v != 3 {
		t.Fatalf("format %d, want 3", v)
	}
	if err := db.View(func(txn *badger.Txn) error {
		if ok, _ := badgerkv.Exists(txn, []byte("new")); !ok {
			t.Error("the migration's write is missing")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestAFailedMigrationLeavesTheOldFormatWhole(t *testing.T) {
	db := openDB(t)
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(key, badgerkv.U64(1)) }); err != nil {
		t.Fatal(err)
	}
	l := Layout{Name: "test store", Key: key, Current: 2, Migrations: []Migration{{From: 1, Run: func(txn *badger.Txn) error {
		if err := txn.Set([]byte("half"), []byte("written")); err != nil {
			return err
		}
		return errors.New("disk on fire")
	}}}}
	if _, err := l.Open(db); err == nil {
		t.Fatal("a failing migration was reported as done")
	}
	if v := format(t, db); v != 1 {
		t.Fatalf("format %d after a failed migration, want 1", v)
	}
	if err := db.View(func(txn *badger.Txn) error {
		if ok, _ := badgerkv.Exists(txn, []byte("half")); ok {
			t.Error("the failed migration's write was kept")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestAMissingMigrationIsAnError(t *testing.T) {
	db := openDB(t)
	if _, err := (Layout{Name: "test store", Key: key, Current: 2}).Open(db); err == nil {
		t.Fatal("format 1 to 2 without a migration was accepted")
	}
}

func TestCheckKeyRefusesANewerOrMalformedFormatKey(t *testing.T) {
	l := Layout{Name: "test store", Key: key, Current: 2}
	if err := l.CheckKey([]byte("other"), []byte("anything"), "v1"); err != nil {
		t.Errorf("another key: %v", err)
	}
	if err := l.CheckKey(key, badgerkv.U64(2), "v1"); err != nil {
		t.Errorf("the current format: %v", err)
	}
	if err := l.CheckKey(key, badgerkv.U64(3), "v9"); !errors.Is(err, ErrTooNew) {
		t.Errorf("a newer format: %v, want ErrTooNew", err)
	}
	if err := l.CheckKey(key, []byte{1}, "v1"); err == nil {
		t.Error("a one-byte format key was accepted")
	}
}

func TestDescribeSaysWhatOpenDid(t *testing.T) {
	l := Layout{Name: "MDB", Key: key, Current: 3}
	for found, want := range map[uint64]string{3: "", 0: "recorded the MDB's on-disk format (3)", 1: "migrated the MDB from format 1 to 3"} {
		if got := l.Describe(found); got != want {
			t.Errorf("Describe(%d) = %q, want %q", found, got, want)
		}
	}
}
