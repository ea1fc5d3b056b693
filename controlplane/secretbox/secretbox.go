// Package secretbox seals small secrets (BMC passwords) for storage at
// rest with AES-256-GCM under a key the manager reads from a file.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the key's length in bytes.
const KeySize = 32

// Key seals and opens. The zero Key is unusable.
type Key struct{ aead cipher.AEAD }

// ErrOpen: the sealed bytes are not this key's (another key, damaged).
var ErrOpen = errors.New("secretbox: cannot open: another key, or damaged")

// NewKey makes a Key from 32 bytes.
func NewKey(k []byte) (*Key, error) {
	if len(k) != KeySize {
		return nil, fmt.Errorf("secretbox: key is %d bytes, want %d", len(k), KeySize)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Key{aead: aead}, nil
}

// LoadKey reads a key file: 64 hex digits (GenerateKeyFile's format). A
// file others may read is refused.
func LoadKey(path string) (*Key, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("secretbox: key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secretbox: key file %s is readable by others (mode %o): chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secretbox: key file: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != KeySize {
		return nil, fmt.Errorf("secretbox: key file %s: want %d hex digits", path, 2*KeySize)
	}
	return NewKey(k)
}

// GenerateKeyFile writes a new random key to path (mode 600), refusing to
// overwrite one.
func GenerateKeyFile(path string) error {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("secretbox: %w", err)
	}
	if _, err := fmt.Fprintln(f, hex.EncodeToString(k)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Seal encrypts plain; label binds it to its use (a credential's name):
// sealed bytes moved to another label do not open.
func (k *Key) Seal(plain []byte, label string) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.aead.Seal(nonce, nonce, plain, []byte(label)), nil
}

// Open decrypts what Seal made with the same key and label.
func (k *Key) Open(sealed []byte, label string) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n {
		return nil, ErrOpen
	}
	p, err := k.aead.Open(nil, sealed[:n], sealed[n:], []byte(label))
	if err != nil {
		return nil, ErrOpen
	}
	return p, nil
}
