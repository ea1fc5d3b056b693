package dhcp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/insomniacslk/dhcp/dhcpv4"

	"osim/internal/diskspace"
	"osim/internal/disktest"
)

// TestLeaseWritesOnAFullDiskAreRefusedNotFaulted keeps leases in Badger
// on a filesystem the test mounts (tmpfs, then ext4 on a loop device)
// behind the disk guard osim-bootd uses, and fills it to the last byte:
// new clients get no offer (counted as disk_full), a client with a lease
// is answered for the time its lease has left, nothing faults, and once
// space is back new clients are served again. Before the guard, Badger
// took the next lease write into the full filesystem as a SIGBUS.
func TestLeaseWritesOnAFullDiskAreRefusedNotFaulted(t *testing.T) {
	for _, kind := range disktest.Kinds {
		t.Run(kind, func(t *testing.T) { leasesOnFullDisk(t, kind) })
	}
}

func leasesOnFullDisk(t *testing.T, kind string) {
	mnt := disktest.Mount(t, kind, 256<<20)
	dir := filepath.Join(mnt, "data")
	opts := badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(8 << 20)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	g := diskspace.New(dir, diskspace.BadgerReserve(opts), diskspace.Options{Ballast: opts.MemTableSize, Logger: quiet, MaxAge: time.Nanosecond})
	if _, err := g.Prepare(diskspace.OpenMin(opts)); err != nil {
		t.Fatal(err)
	}
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	leases := openLeases(t, db)
	leases.SetSpace(g)
	clk := newClock()
	f := &Full{Pools: []Pool{localPool("10.0.0.10", "10.0.0.200")}, Leases: leases, Clock: clk}

	dora := func(mac net.HardwareAddr) (string, Outcome) {
		offer, o := respond(t, f, dhcpMsg(t, mac, dhcpv4.MessageTypeDiscover))
		if offer == nil {
			return "", o
		}
		ack, o := respond(t, f, dhcpMsg(t, mac, dhcpv4.MessageTypeRequest, serverID(serverIP), requested(yi(offer))))
		if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
			return "", o
		}
		return yi(ack), o
	}
	held, o := dora(macB)
	if held == "" {
		t.Fatalf("a lease with room: %s", o)
	}

	filler := disktest.Fill(t, mnt, 0)
	for i := range 50 {
		mac := net.HardwareAddr{0x02, 0xdf, 0, 0, 0, byte(i)}
		reply, o, err := f.Respond(context.Background(), dhcpMsg(t, mac, dhcpv4.MessageTypeDiscover), in67, Peer{})
		if reply != nil || o != OutcomeDiskFull || err == nil {
			t.Fatalf("a new client on a full disk: reply %v outcome %s err %v, want silence, disk_full and the reason", yi(reply), o, err)
		}
	}
	clk.Step(20 * time.Minute)
	ack, o := respond(t, f, dhcpMsg(t, macB, dhcpv4.MessageTypeRequest, ciaddr(held)))
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || yi(ack) != held || o != OutcomeLeaseKept {
		t.Fatalf("a renewal on a full disk: %v %s, want an ACK of %s (lease_kept)", yi(ack), o, held)
	}
	if lt := ack.IPAddressLeaseTime(0); lt <= 0 || lt > 40*time.Minute {
		t.Errorf("the kept lease is answered for %s; it has 40m left and cannot be extended", lt)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if got, o := dora(macC); got == "" {
		t.Fatalf("a new client once space is back: %s", o)
	}
}
