package dhcp

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// holdLeader starts an update that leads alone and stays inside its
// transaction until release is called; then it runs fn (nil: nothing).
// release returns the update's result.
func holdLeader(s *BadgerLeases, fn func(LeaseTx) error) (release func() error) {
	in, out := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Update(context.Background(), func(tx LeaseTx) error {
			close(in)
			<-out
			if fn == nil {
				return nil
			}
			return fn(tx)
		})
	}()
	<-in
	return func() error { close(out); return <-done }
}

// queueUpdate starts an update behind the held leader and returns once it
// waits in the queue, so updates queue in the order of the calls; its
// result arrives on results.
func queueUpdate(s *BadgerLeases, ctx context.Context, fn func(LeaseTx) error, results chan<- error) {
	n := s.queued()
	go func() { results <- s.Update(ctx, fn) }()
	for s.queued() == n {
		time.Sleep(time.Millisecond)
	}
}

// TestLeaseUpdatesQueuedDuringACommitShareOneTransaction: updates that
// arrive while another commits are run together in one Badger transaction,
// in arrival order (each sees the ones before it), and one that fails
// leaves none of its writes behind while the others are committed.
func TestLeaseUpdatesQueuedDuringACommitShareOneTransaction(t *testing.T) {
	s := openLeases(t, openBadger(t, t.TempDir()))
	ctx := context.Background()
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	lease := func(a string, mac byte) Lease {
		return Lease{IP: ip(a), MAC: net.HardwareAddr{2, 0, 0, 0, 0, mac}, State: LeaseBound, Expires: exp}
	}

	// A leads alone and holds its transaction open until the others queued.
	releaseA := holdLeader(s, func(tx LeaseTx) error { return tx.Put(lease("10.0.0.1", 1)) })

	errC := errors.New("C changed its mind")
	var dSawB, dSawC bool
	results := make(chan error, 3)
	queue := func(fn func(LeaseTx) error) { queueUpdate(s, ctx, fn, results) } // B, then C, then D
	queue(func(tx LeaseTx) error { return tx.Put(lease("10.0.0.2", 2)) })
	queue(func(tx LeaseTx) error {
		if err := tx.Put(lease("10.0.0.3", 3)); err != nil {
			return err
		}
		return errC
	})
	queue(func(tx LeaseTx) error {
		var err error
		_, dSawB, err = tx.Get(ip("10.0.0.2"))
		if err != nil {
			return err
		}
		_, dSawC, err = tx.Get(ip("10.0.0.3"))
		if err != nil {
			return err
		}
		return tx.Put(lease("10.0.0.4", 4))
	})
	if err := releaseA(); err != nil {
		t.Fatalf("A: %v", err)
	}
	var failed int
	for range 3 {
		if err := <-results; errors.Is(err, errC) {
			failed++
		} else if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if failed != 1 {
		t.Fatalf("%d updates returned C's error, want 1", failed)
	}
	if !dSawB || dSawC {
		t.Fatalf("D saw B's write %v (want true) and C's %v (want false)", dSawB, dSawC)
	}
	if got := s.commits.Load(); got != 2 {
		t.Fatalf("%d Badger commits for A alone and B, C, D queued behind it, want 2", got)
	}
	// In memory, and in Badger (a reopen reads nothing else).
	for _, store := range []*BadgerLeases{s, openLeases(t, s.db)} {
		err := store.View(func(tx LeaseTx) error {
			for a, want := range map[string]bool{"10.0.0.1": true, "10.0.0.2": true, "10.0.0.3": false, "10.0.0.4": true} {
				if _, ok, err := tx.Get(ip(a)); err != nil || ok != want {
					t.Errorf("lease %s stored: %v (err %v), want %v", a, ok, err, want)
				}
			}
			got, ok, err := tx.ByMAC(net.HardwareAddr{2, 0, 0, 0, 0, 3})
			if err != nil || ok {
				t.Errorf("C's MAC index stored: %v %s (err %v), want none", ok, got, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestLeaseUpdateWithCancelledContextInAGroupFailsAlone: a caller that
// gave up before its group ran gets its context's error; the group commits.
func TestLeaseUpdateWithCancelledContextInAGroupFailsAlone(t *testing.T) {
	s := openLeases(t, openBadger(t, t.TempDir()))
	release := holdLeader(s, nil)
	cctx, cancel := context.WithCancel(context.Background())
	results := make(chan error, 2)
	queueUpdate(s, context.Background(), func(tx LeaseTx) error {
		return tx.Put(Lease{IP: ip("10.0.0.9"), State: LeaseDeclined, Expires: time.Now().Add(time.Hour)})
	}, results)
	queueUpdate(s, cctx, func(LeaseTx) error { return nil }, results)
	cancel()
	if err := release(); err != nil {
		t.Fatal(err)
	}
	var cancelled, ok int
	for range 2 {
		switch err := <-results; {
		case errors.Is(err, context.Canceled):
			cancelled++
		case err == nil:
			ok++
		default:
			t.Fatalf("unexpected: %v", err)
		}
	}
	if cancelled != 1 || ok != 1 {
		t.Fatalf("cancelled %d, ok %d; want 1 and 1", cancelled, ok)
	}
	if _, found := getLeaseFrom(t, s, "10.0.0.9"); !found {
		t.Fatal("the other update of the group was not committed")
	}
}

func getLeaseFrom(t *testing.T, s LeaseStore, a string) (Lease, bool) {
	t.Helper()
	var (
		l  Lease
		ok bool
	)
	if err := s.View(func(tx LeaseTx) (err error) { l, ok, err = tx.Get(ip(a)); return err }); err != nil {
		t.Fatal(err)
	}
	return l, ok
}

// queued is how many updates wait for a group (for tests).
func (s *BadgerLeases) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// TestOpenBadgerLeasesRefusesACorruptRecord: a lease record that does not
// decode stops the start with the address named, instead of serving from
// a table that silently lacks it.
func TestOpenBadgerLeasesRefusesACorruptRecord(t *testing.T) {
	db := openBadger(t, t.TempDir())
	s := openLeases(t, db)
	if err := s.Update(context.Background(), func(tx LeaseTx) error {
		return tx.Put(Lease{IP: ip("10.0.0.5"), MAC: macA, State: LeaseBound, Expires: time.Now().Add(time.Hour)})
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(ipKey(ip("10.0.0.6")), []byte{9, 9}) }); err != nil {
		t.Fatal(err)
	}
	_, err := OpenBadgerLeases(db)
	if err == nil || !strings.Contains(err.Error(), "10.0.0.6") {
		t.Fatalf("open with a corrupt record: %v, want an error naming 10.0.0.6", err)
	}
}

// TestOffersStayInMemoryAndARestartForgetsThem: a DISCOVER costs no
// Badger write; a server restarted between OFFER and REQUEST NAKs the
// REQUEST (the client starts over), while bound leases and the MAC index
// come back from Badger.
func TestOffersStayInMemoryAndARestartForgetsThem(t *testing.T) {
	dir, clk := t.TempDir(), newClock()
	db := openBadger(t, dir)
	leases := openLeases(t, db)
	f := &Full{Pools: []Pool{localPool("10.0.0.100", "10.0.0.110")}, Leases: leases, Clock: clk}
	offer, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover))
	if o != OutcomeLeaseOffer || yi(offer) != "10.0.0.100" {
		t.Fatalf("discover: %q %s", o, yi(offer))
	}
	if n := leases.commits.Load(); n != 0 {
		t.Fatalf("an offer made %d Badger commits, want 0", n)
	}
	if l, ok := getLease(t, f, "10.0.0.100"); !ok || l.State != LeaseOffered {
		t.Fatalf("the offer in memory: %+v (found %v)", l, ok)
	}
	// B is offered and bound before the restart.
	respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeDiscover))
	if _, o := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeRequest, serverID(serverIP), requested("10.0.0.101"))); o != OutcomeLeaseAck {
		t.Fatalf("B's request: %q", o)
	}

	f.Leases = openLeases(t, db) // the restart: what Badger holds
	if _, ok := getLease(t, f, "10.0.0.100"); ok {
		t.Fatal("A's offer survived the restart")
	}
	if _, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, serverID(serverIP), requested("10.0.0.100"))); o != OutcomeLeaseNak {
		t.Fatalf("A's request after the restart: %q, want a NAK", o)
	}
	err := f.Leases.View(func(tx LeaseTx) error {
		if got, ok, err := tx.ByMAC(macA); err != nil || ok {
			t.Errorf("A's index (an offer's) after the restart: %s %v %v, want none", got, ok, err)
		}
		got, ok, err := tx.ByMAC(macB)
		if err != nil || !ok || got != ip("10.0.0.101") {
			t.Errorf("B's index after the restart: %s %v %v", got, ok, err)
		}
		l, ok, err := tx.Get(ip("10.0.0.101"))
		if err != nil || !ok || l.State != LeaseBound || !macEqual(l.MAC, macB) {
			t.Errorf("B's lease after the restart: %+v %v %v", l, ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A starts over and gets an address B does not hold.
	if reply, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover)); o != OutcomeLeaseOffer || yi(reply) == "10.0.0.101" {
		t.Fatalf("A's new discover: %q %s", o, yi(reply))
	}
}

// TestCountActiveAgreesWithTheLeases: the scrape's count without building
// leases is the count of bound, unexpired ones that View shows.
func TestCountActiveAgreesWithTheLeases(t *testing.T) {
	s := openLeases(t, openBadger(t, t.TempDir()))
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	leases := []Lease{
		{IP: ip("10.0.0.1"), MAC: macA, State: LeaseBound, Expires: now.Add(time.Hour)},
		{IP: ip("10.0.0.2"), MAC: macB, State: LeaseBound, Expires: now.Add(-time.Second)},
		{IP: ip("10.0.0.3"), MAC: macC, State: LeaseBound, Expires: now.Add(time.Nanosecond)},
		{IP: ip("10.0.0.4"), MAC: macA, State: LeaseReleased, Expires: now.Add(time.Hour)},
		{IP: ip("10.0.0.5"), State: LeaseDeclined, Expires: now.Add(time.Hour)},
		{IP: ip("10.0.0.6"), MAC: macB, State: LeaseOffered, Expires: now.Add(time.Hour)},
	}
	if err := s.Update(context.Background(), func(tx LeaseTx) error {
		for _, l := range leases {
			if err := tx.Put(l); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The wrapper hides CountActive: ActiveLeases counts through View.
	want, err := ActiveLeases(struct{ LeaseStore }{s}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CountActive(now); got != want || want != 2 {
		t.Fatalf("CountActive %d, leases show %d, want 2", got, want)
	}
}

// TestRenewalRewritesTheLeaseButNotTheIndex: a REQUEST after the OFFER
// and every renewal write the lease record; the MAC index only when the
// client's address changes.
func TestRenewalRewritesTheLeaseButNotTheIndex(t *testing.T) {
	clk := newClock()
	db := openBadger(t, t.TempDir())
	leases := openLeases(t, db)
	f := &Full{Pools: []Pool{localPool("10.0.0.100", "10.0.0.110")}, Leases: leases, Clock: clk}
	respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover))
	if _, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, serverID(serverIP), requested("10.0.0.100"))); o != OutcomeLeaseAck {
		t.Fatalf("request: %q", o)
	}
	versions := func() (lease, index uint64) {
		err := db.View(func(txn *badger.Txn) error {
			li, err := txn.Get(ipKey(ip("10.0.0.100")))
			if err != nil {
				return err
			}
			mi, err := txn.Get(append([]byte("lease/mac/"), macA...))
			if err != nil {
				return err
			}
			lease, index = li.Version(), mi.Version()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return lease, index
	}
	l0, i0 := versions()
	clk.Step(time.Minute)
	if _, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, ciaddr("10.0.0.100"))); o != OutcomeLeaseAck {
		t.Fatalf("renewal: %q", o)
	}
	l1, i1 := versions()
	if l1 == l0 || i1 != i0 {
		t.Fatalf("renewal: lease version %d -> %d (want a new one), index %d -> %d (want the same)", l0, l1, i0, i1)
	}
}

// TestLettingAnOfferGoWritesNothing: a client that picks another server's
// offer, or releases an address it was only offered, frees it in memory
// without a Badger commit.
func TestLettingAnOfferGoWritesNothing(t *testing.T) {
	clk := newClock()
	leases := openLeases(t, openBadger(t, t.TempDir()))
	f := &Full{Pools: []Pool{localPool("10.0.0.100", "10.0.0.100")}, Leases: leases, Clock: clk}
	respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover))
	if _, o := respond(t, f, dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, serverID(net.IPv4(10, 0, 0, 2)), requested("10.0.0.50"))); o != OutcomeOtherServer {
		t.Fatalf("request for another server: %q", o)
	}
	if reply, o := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeDiscover)); o != OutcomeLeaseOffer || yi(reply) != "10.0.0.100" {
		t.Fatalf("B after A went elsewhere: %q %s", o, yi(reply))
	}
	if _, o := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeRelease, ciaddr("10.0.0.100"))); o != OutcomeReleased {
		t.Fatalf("B releasing its offer: %q", o)
	}
	if reply, o := respond(t, f, dhcpMsg(t, macC, dhcpv4.MessageTypeDiscover)); o != OutcomeLeaseOffer || yi(reply) != "10.0.0.100" {
		t.Fatalf("C after B released: %q %s", o, yi(reply))
	}
	if n := leases.commits.Load(); n != 0 {
		t.Fatalf("%d Badger commits for offers only, want 0", n)
	}
}

// TestAPanickingUpdateFailsAloneAndTheStoreGoesOn: a panic in one update
// becomes its error; the update behind it and later ones still commit.
func TestAPanickingUpdateFailsAloneAndTheStoreGoesOn(t *testing.T) {
	s := openLeases(t, openBadger(t, t.TempDir()))
	ctx := context.Background()
	put := func(a string) func(LeaseTx) error {
		return func(tx LeaseTx) error {
			return tx.Put(Lease{IP: ip(a), MAC: macA, State: LeaseBound, Expires: time.Now().Add(time.Hour)})
		}
	}
	release := holdLeader(s, nil)
	results := make(chan error, 2)
	queueUpdate(s, ctx, func(LeaseTx) error { panic("boom") }, results)
	queueUpdate(s, ctx, put("10.0.0.1"), results)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	var panicked, ok int
	for range 2 {
		switch err := <-results; {
		case err == nil:
			ok++
		case strings.Contains(err.Error(), "boom"):
			panicked++
		default:
			t.Fatalf("unexpected: %v", err)
		}
	}
	if panicked != 1 || ok != 1 {
		t.Fatalf("panicked %d, ok %d; want 1 and 1", panicked, ok)
	}
	if err := s.Update(ctx, put("10.0.0.2")); err != nil {
		t.Fatalf("an update after the panic: %v", err)
	}
	for _, a := range []string{"10.0.0.1", "10.0.0.2"} {
		if _, found := getLeaseFrom(t, s, a); !found {
			t.Errorf("%s not stored", a)
		}
	}
}

// TestAGroupThatCannotCommitIsRetriedUpdateByUpdate: when the group's
// transaction is refused (here: too big for Badger), each update runs
// alone: the small one commits, the oversized one gets the error.
func TestAGroupThatCannotCommitIsRetriedUpdateByUpdate(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil).WithMemTableSize(1 << 20).WithValueThreshold(1 << 10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := openLeases(t, db)
	ctx := context.Background()
	release := holdLeader(s, nil)
	big, small := make(chan error, 1), make(chan error, 1)
	queueUpdate(s, ctx, func(tx LeaseTx) error {
		a := ip("10.1.0.0")
		for range 20000 {
			if err := tx.Put(Lease{IP: a, MAC: macB, State: LeaseBound, Expires: time.Now().Add(time.Hour)}); err != nil {
				return err
			}
			a = a.Next()
		}
		return nil
	}, big)
	queueUpdate(s, ctx, func(tx LeaseTx) error {
		return tx.Put(Lease{IP: ip("10.0.0.7"), MAC: macA, State: LeaseBound, Expires: time.Now().Add(time.Hour)})
	}, small)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := <-big; !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("the oversized update: %v, want ErrTxnTooBig", err)
	}
	if err := <-small; err != nil {
		t.Fatalf("the small update: %v", err)
	}
	if _, found := getLeaseFrom(t, openLeases(t, db), "10.0.0.7"); !found {
		t.Fatal("the small update is not in Badger")
	}
	if _, found := getLeaseFrom(t, s, "10.1.0.0"); found {
		t.Fatal("the oversized update left a lease in memory")
	}
}
