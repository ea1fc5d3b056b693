package mdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
)

// TestEventRetentionDropsOldestByCountThenByAge: events are kept by count
// (the oldest over the cap go) and by age (older than the cut-off go);
// seqs are never reused and the listing starts at the oldest kept.
func TestEventRetentionDropsOldestByCountThenByAge(t *testing.T) {
	d, _ := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1200 { // more than one chunk of eventChunk
		if _, err := d.AppendEvent(ctx, api.Event{Type: "test", Time: t0.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	byAge, byCount, err := d.DropEvents(ctx, t0, 1000)
	if err != nil || byAge != 0 || byCount != 200 {
		t.Fatalf("cap 1000 of 1200: by age %d, by count %d, %v; want 0 and 200", byAge, byCount, err)
	}
	evs, err := d.ListEvents(ctx, EventQuery{Limit: 5})
	if err != nil || len(evs) == 0 || evs[0].Seq != 201 {
		t.Fatalf("first kept event: %+v %v, want seq 201", evs, err)
	}
	// By age: everything before minute 700.
	byAge, byCount, err = d.DropEvents(ctx, t0.Add(700*time.Minute), 1000)
	if err != nil || byAge != 500 || byCount != 0 {
		t.Fatalf("age cut at minute 700: by age %d, by count %d, %v; want 500 and 0", byAge, byCount, err)
	}
	e, err := d.AppendEvent(ctx, api.Event{Type: "test", Time: t0.Add(2000 * time.Minute)})
	if err != nil || e.Seq != 1201 {
		t.Fatalf("the next event after retention: seq %d %v, want 1201 (never reused)", e.Seq, err)
	}
}

// TestBlobLockMapDoesNotGrowWithUnknownHashes: asking about hashes that
// were never uploaded leaves nothing behind (it grew by ~106 bytes per
// hash before).
func TestBlobLockMapDoesNotGrowWithUnknownHashes(t *testing.T) {
	d, _ := openTest(t)
	ctx := context.Background()
	for i := range 1000 {
		sha := fmt.Sprintf("%064x", i)
		if _, err := d.BlobStatus(ctx, sha); err == nil {
			t.Fatalf("status of an unknown blob %s: no error", sha)
		}
		_ = d.AbortUpload(ctx, sha)
	}
	up := upload(t, d, strings.Repeat("x", 100))
	if _, err := d.BlobStatus(ctx, up.SHA256); err != nil {
		t.Fatal(err)
	}
	d.blobMu.Lock()
	n := len(d.blobLocks)
	d.blobMu.Unlock()
	if n != 0 {
		t.Fatalf("%d blob locks kept after 1000 unknown hashes and one upload, want 0", n)
	}
}

// TestTargetsStoredBeforeTheHostnameIndexAreIndexedAtOpen: a store made
// before the host name index (its keys and the marker absent) gets its
// targets indexed when it opens, so a duplicate of an old target's name
// is refused too.
func TestTargetsStoredBeforeTheHostnameIndexAreIndexedAtOpen(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old := mustTargets(t, d, "s1", 0, 3)
	// Make it look like an old store: no index, no marker.
	if _, err := deleteIndex(d); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d, err = Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := spec(100, "s1")
	s.Hostname = strings.ToUpper(old[1].Hostname)
	if _, err := d.CreateTarget(ctx, s); !errors.Is(err, ErrConflict) {
		t.Fatalf("a new target named like an old one: %v, want ErrConflict", err)
	}
}

func deleteIndex(d *DB) (int, error) {
	n := 0
	err := d.db.Update(func(txn *badger.Txn) error {
		var keys [][]byte
		if err := scan(txn, pHostname, "", false, func(k []byte, _ *badger.Item) (bool, error) {
			keys = append(keys, bytes.Clone(k))
			return true, nil
		}); err != nil {
			return err
		}
		keys = append(keys, keyHostIndexed)
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
