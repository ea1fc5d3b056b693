package agent

import (
	"encoding/json"
	"maps"
	"reflect"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
)

func dumpKeys(t *testing.T, db *badger.DB, prefix []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(it.Item().Key()[len(prefix):])] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestViewCodecKeepsTheOnDiskLayout pins the keys a boot server already
// has in its Badger, and shows the transaction and the snapshot batch
// write the same keys for the same live objects.
func TestViewCodecKeepsTheOnDiskLayout(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tg := target("t-1", "52:54:00:00:00:01", "52-54-00-00-00-02")
	o := order("o-1", "t-1", "52:54:00:00:00:01", api.OrderStaged, "img-os", "")
	img := api.Image{ID: "img-os", Name: "debian"}
	changes := []api.Change{
		{Kind: api.ChangeTarget, ID: tg.ID, Target: &tg},
		{Kind: api.ChangeOrder, ID: o.ID, Order: &o},
		{Kind: api.ChangeImage, ID: img.ID, Image: &img},
		{Kind: "future-kind", ID: "x"},
	}
	err = db.Update(func(txn *badger.Txn) error {
		for _, c := range changes {
			if err := putChange(txnOps{txn}, 1, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wb := db.NewWriteBatch()
	for _, c := range changes {
		if err := putChange(freshBatch{wb}, 0x2a, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	byTxn := dumpKeys(t, db, []byte("agent/g/0000000000000001/"))
	byBatch := dumpKeys(t, db, []byte("agent/g/000000000000002a/"))
	want := []string{"t/t-1", "m/52:54:00:00:00:01", "m/52:54:00:00:00:02", "o/o-1", "i/img-os"}
	if len(byTxn) != len(want) {
		t.Errorf("keys %v, want %v", slicesOf(byTxn), want)
	}
	for _, k := range want {
		if _, ok := byTxn[k]; !ok {
			t.Errorf("key %q missing (have %v)", k, slicesOf(byTxn))
		}
	}
	// Values: the MAC index holds the target id, objects are their JSON.
	tj, _ := json.Marshal(tg)
	if byTxn["m/52:54:00:00:00:02"] != "t-1" || byTxn["t/t-1"] != string(tj) {
		t.Errorf("values: MAC index %q, target %q", byTxn["m/52:54:00:00:00:02"], byTxn["t/t-1"])
	}
	if !maps.Equal(byTxn, byBatch) {
		t.Errorf("a snapshot page wrote %v, the transaction %v", byBatch, byTxn)
	}

	// A MAC moved to another target, then the order ended and the target
	// lost a MAC: the index keeps the other target's entry.
	t2 := target("t-2", "52:54:00:00:00:02")
	t1 := target("t-1", "52:54:00:00:00:01")
	done := o
	done.State = api.OrderDone
	err = db.Update(func(txn *badger.Txn) error {
		for _, c := range []api.Change{
			{Kind: api.ChangeTarget, ID: t2.ID, Target: &t2},
			{Kind: api.ChangeTarget, ID: t1.ID, Target: &t1},
			{Kind: api.ChangeOrder, ID: o.ID, Order: &done},
		} {
			if err := putChange(txnOps{txn}, 1, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := dumpKeys(t, db, []byte("agent/g/0000000000000001/"))
	if got["m/52:54:00:00:00:02"] != "t-2" || got["m/52:54:00:00:00:01"] != "t-1" {
		t.Errorf("MAC index %v", got)
	}
	if _, ok := got["o/o-1"]; ok {
		t.Error("an ended order stayed in the store")
	}
	// What the store holds reads back as the mirror the same changes made.
	v, err := loadView(db, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	mem := newView()
	mem.full = true
	for _, c := range changes {
		mem.apply(c)
	}
	for _, c := range []api.Change{{Kind: api.ChangeTarget, ID: t2.ID, Target: &t2}, {Kind: api.ChangeTarget, ID: t1.ID, Target: &t1},
		{Kind: api.ChangeOrder, ID: o.ID, Order: &done}} {
		mem.apply(c)
	}
	if !reflect.DeepEqual(v.byMAC, mem.byMAC) || !reflect.DeepEqual(v.orders, mem.orders) || len(v.targets) != len(mem.targets) {
		t.Errorf("store reads back as %v / %v, the mirror holds %v / %v", v.byMAC, v.orders, mem.byMAC, mem.orders)
	}
}

func slicesOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
