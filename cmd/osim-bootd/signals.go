package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// watchSIGHUP runs reload on every SIGHUP until ctx ends. It is installed
// before the services start: SIGHUP's default action would end the
// process.
func watchSIGHUP(ctx context.Context, reload func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload()
			}
		}
	}()
}
