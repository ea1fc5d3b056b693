package pxeclient

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Netns runs functions on one OS thread that has entered a network
// namespace. Sockets opened there stay in that namespace and can be used
// from any goroutine afterwards.
type Netns struct {
	reqs chan func()
	done chan struct{}
}

// OpenNetns enters the namespace at path (e.g. /run/netns/NAME) on a
// dedicated locked thread. The thread is discarded on Close, never reused.
func OpenNetns(path string) (*Netns, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pxeclient: open netns: %w", err)
	}
	n := &Netns{reqs: make(chan func()), done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		errc <- err
		if err != nil {
			return
		}
		for {
			select {
			case fn := <-n.reqs:
				fn()
			case <-n.done:
				return
			}
		}
	}()
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("pxeclient: setns %s: %w", path, err)
	}
	return n, nil
}

// Do runs f inside the namespace and returns its error.
func (n *Netns) Do(f func() error) error {
	errc := make(chan error, 1)
	select {
	case n.reqs <- func() { errc <- f() }:
	case <-n.done:
		return fmt.Errorf("pxeclient: netns closed")
	}
	return <-errc
}

// Close ends the namespace's thread.
func (n *Netns) Close() { close(n.done) }
