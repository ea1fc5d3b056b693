package dhcp

import (
	"errors"
	"fmt"
)

// SpaceGuard refuses a write when the data dir's free space is below its
// reserve (internal/diskspace implements it): Badger writes through mmap,
// and a write into a full filesystem is a SIGBUS, not an error.
type SpaceGuard interface {
	Check(need int64) error
}

// ErrNoSpace wraps a lease write refused by the SpaceGuard.
var ErrNoSpace = errors.New("dhcp: lease not stored: data dir nearly full")

// SetSpace makes every lease write ask g first. Offers, held in memory,
// are not writes.
func (s *BadgerLeases) SetSpace(g SpaceGuard) { s.space = g }

func (s *BadgerLeases) roomForWrite() error {
	if s.space == nil {
		return nil
	}
	if err := s.space.Check(0); err != nil {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return nil
}

// Room reports whether a lease write would be accepted now.
func (s *BadgerLeases) Room() error { return s.roomForWrite() }

// storeRoom asks a store that can tell (BadgerLeases) whether it has room
// for a write; stores that cannot tell have.
func storeRoom(s LeaseStore) error {
	if r, ok := s.(interface{ Room() error }); ok {
		return r.Room()
	}
	return nil
}
