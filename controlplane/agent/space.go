package agent

import "fmt"

// SpaceGuard refuses a write of need more bytes when the data dir's free
// space is below its reserve (internal/diskspace implements it). With the
// disk nearly full the boot server keeps answering from what it has:
// events are dropped and counted, the sync waits, staging is refused with
// the space it lacks.
type SpaceGuard interface {
	Check(need int64) error
}

// guard asks the SpaceGuard, if there is one.
type guard struct{ g SpaceGuard }

func (g guard) room(need int64) error {
	if g.g == nil {
		return nil
	}
	if err := g.g.Check(need); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}
