package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"osim/controlplane/api"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, PEM.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "osim-manager test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeOverTLSRequiresTheCertificateAndAToken runs
// serve with a certificate: HTTPS works for a client trusting it, the API
// still wants a token, and a plain-HTTP request gets no API answer.
func TestServeOverTLSRequiresTheCertificateAndAToken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildManager(t)
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	tokFile := filepath.Join(dir, "admin.token")
	cmd, base := startServe(t, bin, "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"),
		"--tls-cert", certFile, "--tls-key", keyFile, "--bootstrap-token-file", tokFile)
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("serve with a certificate printed %q, want an https URL", base)
	}
	secret, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	resp, err := trusting.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("healthz over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz over TLS: %d", resp.StatusCode)
	}
	// An untrusting client refuses the certificate.
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("a client without the certificate accepted it")
	}
	// Plain HTTP on the TLS port gets no API answer.
	plain := strings.Replace(base, "https://", "http://", 1)
	if resp, err := http.Get(plain + "/api/v1/targets"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP on the TLS listener answered the API")
		}
	}
	c := &api.Client{BaseURL: base, HTTP: trusting}
	if _, err := c.ListTargets(context.Background(), "", "", "", 0); !api.IsStatus(err, http.StatusUnauthorized) {
		t.Fatalf("no token over TLS: %v, want 401", err)
	}
	c.Token = strings.TrimSpace(string(secret))
	if _, err := c.ListTargets(context.Background(), "", "", "", 0); err != nil {
		t.Fatalf("with the admin token over TLS: %v", err)
	}
	stopServe(t, cmd)
}

// TestSIGHUPReloadsTheCertificateAndNeverEndsTheManager: SIGHUP used to
// kill the manager without a log line. Now it re-reads the certificate
// (new connections get the new one), keeps the old one when the new files
// are bad, and the process keeps serving.
func TestSIGHUPReloadsTheCertificateAndNeverEndsTheManager(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildManager(t)
	dir := t.TempDir()
	certFile, keyFile, pool1 := selfSigned(t, dir)
	cmd, base := startServe(t, bin, "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"),
		"--tls-cert", certFile, "--tls-key", keyFile)
	healthz := func(pool *x509.CertPool) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}, Timeout: 5 * time.Second}
		resp, err := c.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := healthz(pool1); err != nil {
		t.Fatal(err)
	}
	// A new certificate under the same names, then SIGHUP.
	_, _, pool2 := selfSigned(t, dir)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for healthz(pool2) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the new certificate is not served after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Bad files: the previous certificate stays.
	os.WriteFile(certFile, []byte("garbage"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if err := healthz(pool2); err != nil {
		t.Fatalf("after a SIGHUP with a bad certificate: %v", err)
	}
	stopServe(t, cmd)
}
