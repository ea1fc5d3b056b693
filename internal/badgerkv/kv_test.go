package badgerkv

import (
	"bytes"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func openMem(t *testing.T) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestValuesReadBackAsWritten(t *testing.T) {
	db := openMem(t)
	type obj struct{ A string }
	err := db.Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte("n"), U64(0x0102030405060708)); err != nil {
			return err
		}
		if err := txn.Set([]byte("short"), []byte{1, 2}); err != nil {
			return err
		}
		return SetJSON(txn, []byte("o"), obj{A: "x"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(U64(0x0102030405060708), []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatal("U64 is not 8 bytes big-endian")
	}
	_ = db.View(func(txn *badger.Txn) error {
		if v, err := GetU64(txn, []byte("n")); err != nil || v != 0x0102030405060708 {
			t.Errorf("GetU64 = %x, %v", v, err)
		}
		if v, err := GetU64(txn, []byte("missing")); err != nil || v != 0 {
			t.Errorf("GetU64 of a missing key = %d, %v; want 0", v, err)
		}
		if _, err := GetU64(txn, []byte("short")); err == nil {
			t.Error("GetU64 of a 2-byte value succeeded")
		}
		var o obj
		if found, err := GetJSON(txn, []byte("o"), &o); !found || err != nil || o.A != "x" {
			t.Errorf("GetJSON = %v, %v, %+v", found, err, o)
		}
		if s, found, err := GetString(txn, []byte("o")); !found || err != nil || s != `{"A":"x"}` {
			t.Errorf("GetString = %q, %v, %v", s, found, err)
		}
		if found, err := GetJSON(txn, []byte("missing"), &o); found || err != nil {
			t.Errorf("GetJSON of a missing key = %v, %v", found, err)
		}
		if ok, err := Exists(txn, []byte("missing")); ok || err != nil {
			t.Errorf("Exists of a missing key = %v, %v", ok, err)
		}
		return nil
	})
}

func TestDeleteKeysKeepsWhatKeepSays(t *testing.T) {
	db := openMem(t)
	_ = db.Update(func(txn *badger.Txn) error {
		for _, k := range []string{"p/a", "p/b", "p/keep", "q/a"} {
			if err := txn.Set([]byte(k), nil); err != nil {
				return err
			}
		}
		return nil
	})
	n, err := DeleteKeys(db, []byte("p/"), func(k []byte) bool { return bytes.HasSuffix(k, []byte("keep")) })
	if err != nil || n != 2 {
		t.Fatalf("DeleteKeys = %d, %v; want 2", n, err)
	}
	_ = db.View(func(txn *badger.Txn) error {
		for k, want := range map[string]bool{"p/a": false, "p/b": false, "p/keep": true, "q/a": true} {
			if ok, _ := Exists(txn, []byte(k)); ok != want {
				t.Errorf("%s present = %v, want %v", k, ok, want)
			}
		}
		return nil
	})
}
