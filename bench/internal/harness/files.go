package harness

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"osim/bench/internal/peers"
)

// Files are the served files, by name, with their content: the clients
// compare every block they receive with it.
type Files map[string][]byte

// makeFiles writes every file the matrix needs into root, readable by
// nobody (tftpd-hpa, atftpd and dnsmasq read as nobody). The content is a
// ChaCha8 stream seeded by the name: not compressible, not periodic, so a
// block sent at the wrong offset (a rollover bug) cannot match by chance,
// and the same on every run.
func makeFiles(root string, sizes map[string]int) (Files, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("harness: make root %s: %w", root, err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		return nil, fmt.Errorf("harness: chmod root %s: %w", root, err)
	}
	sizes[peers.ProbeFile] = 1024
	files := Files{}
	for name, size := range sizes {
		var seed [32]byte
		copy(seed[:], name)
		b := make([]byte, size)
		rand.NewChaCha8(seed).Read(b)
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, fmt.Errorf("harness: write %s: %w", p, err)
		}
		files[name] = b
	}
	return files, nil
}
