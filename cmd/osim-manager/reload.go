package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

// certReloader serves the TLS certificate it last read; SIGHUP reads the
// files again, so a renewed certificate needs no restart.
type certReloader struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	return r, r.reload()
}

func (r *certReloader) reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("%s, %s: %w", r.certFile, r.keyFile, err)
	}
	r.cur.Store(&c)
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.cur.Load(), nil }

// reloadOnHUP handles SIGHUP until ctx ends: the TLS certificate is read
// again (a bad one is logged and the old one kept); every flag needs a
// restart, and the log says so. SIGHUP never ends the manager.
func reloadOnHUP(ctx context.Context, certs *certReloader, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if certs == nil {
			log.Info("SIGHUP: nothing to re-read (no TLS certificate); flags take effect at a restart")
			continue
		}
		if err := certs.reload(); err != nil {
			log.Error("SIGHUP: TLS certificate not reloaded; still serving the previous one", "err", err)
			continue
		}
		log.Info("SIGHUP: TLS certificate reloaded; other flags take effect at a restart", "cert", certs.certFile)
	}
}
