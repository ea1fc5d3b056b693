package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// raiseNoFile lifts the soft open-file limit to the hard one: 5,000 clients
// need 5,000 sockets, and the servers we start inherit the limit too.
func raiseNoFile() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	if lim.Cur >= lim.Max {
		return nil
	}
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit NOFILE to %d: %w", lim.Max, err)
	}
	return nil
}
