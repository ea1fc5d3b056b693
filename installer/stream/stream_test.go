package stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// image is size bytes, half random and half runs, so it compresses some.
func image(size int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, size)
	for i := 0; i < size; i += 4096 {
		if (i/4096)%2 == 0 {
			for j := i; j < min(i+4096, size); j++ {
				b[j] = byte(r.Uint32())
			}
		}
	}
	return b
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// stopAfter serves b with Range support but, on the request it is told,
// stops the body at cut bytes: reader ends, the server closes the
// connection short of Content-Length.
type stopAfter struct {
	b       []byte
	cut     int64
	reqs    atomic.Int32
	ranged  atomic.Int32
	onCut   func() // called instead of ending, if set (blocks)
	cutOnce sync.Once
}

func (s *stopAfter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.reqs.Add(1)
	if r.Header.Get("Range") != "" {
		s.ranged.Add(1)
	}
	w.Header().Set("ETag", `"v1"`)
	var rs io.ReadSeeker = bytes.NewReader(s.b)
	if n == 1 {
		rs = &cutReader{ReadSeeker: rs, left: s.cut, at: func() {
			if s.onCut != nil {
				s.cutOnce.Do(s.onCut)
			}
		}}
	}
	http.ServeContent(w, r, "img", time.Time{}, rs)
}

type cutReader struct {
	io.ReadSeeker
	left int64
	at   func()
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.at()
		return 0, errors.New("cut")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadSeeker.Read(p)
	c.left -= int64(n)
	return n, err
}

func serve(t *testing.T, h http.Handler) (string, *http.Server) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), srv
}

func readAll(t *testing.T, o Options) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, o)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	got, err := io.ReadAll(s)
	if err != nil {
		return got, err
	}
	return got, s.Verify()
}

func TestDroppedConnectionResumesWithRange(t *testing.T) {
	img := image(3 << 20)
	h := &stopAfter{b: img, cut: 1<<20 + 123}
	addr, _ := serve(t, h)
	var retries atomic.Int32
	got, err := readAll(t, Options{URL: "http://" + addr + "/img", Size: int64(len(img)), SHA256: hexSum(img),
		OnRetry: func(int64, error) { retries.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img) {
		t.Fatal("bytes differ from the image")
	}
	if h.ranged.Load() == 0 || retries.Load() == 0 {
		t.Errorf("%d ranged requests, %d retries: the cut was not resumed with Range", h.ranged.Load(), retries.Load())
	}
}

func TestRestartedServerIsResumedOnTheSamePort(t *testing.T) {
	img := image(3 << 20)
	h := &stopAfter{b: img, cut: 2<<20 + 7}
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var addr string
	var srv1 *http.Server
	h.onCut = func() {
		go func() {
			srv1.Close() // the server process dies mid-body
			time.Sleep(300 * time.Millisecond)
			ln, err := net.Listen("tcp", addr) // and comes back on its port
			if err != nil {
				t.Error(err)
				return
			}
			srv2 := &http.Server{Handler: h}
			go srv2.Serve(ln)
			t.Cleanup(func() { srv2.Close() })
		}()
		<-release
	}
	addr, srv1 = serve(t, h)
	got, err := readAll(t, Options{URL: "http://" + addr + "/img", Size: int64(len(img)), SHA256: hexSum(img)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img) {
		t.Fatal("bytes differ from the image")
	}
	if h.ranged.Load() == 0 {
		t.Error("no ranged request after the restart")
	}
}

func TestCompressedImagesAreDecompressedAndHashedAsServed(t *testing.T) {
	img := image(2 << 20)
	var gz, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(img)
	gw.Close()
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(img)
	zw.Close()
	for name, served := range map[string][]byte{"gzip": gz.Bytes(), "zstd": zs.Bytes()} {
		t.Run(name, func(t *testing.T) {
			h := &stopAfter{b: served, cut: int64(len(served) / 2)}
			addr, _ := serve(t, h)
			got, err := readAll(t, Options{URL: "http://" + addr + "/img", Size: int64(len(served)), SHA256: hexSum(served), Compression: name})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, img) {
				t.Fatal("decompressed bytes differ from the image")
			}
		})
	}
}

func TestShaMismatchNamesBothHashes(t *testing.T) {
	img := image(1 << 20)
	addr, _ := serve(t, &stopAfter{b: img, cut: 1 << 30})
	wrong := hexSum([]byte("something else"))
	_, err := readAll(t, Options{URL: "http://" + addr + "/img", Size: int64(len(img)), SHA256: wrong})
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("got %v, want ErrMismatch", err)
	}
	if !strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), hexSum(img)) {
		t.Errorf("%v does not name the expected and actual hashes", err)
	}
}

func TestClientErrorIsFatalAndUnreachableServerGivesUp(t *testing.T) {
	addr, _ := serve(t, http.NotFoundHandler())
	_, err := readAll(t, Options{URL: "http://" + addr + "/img", SHA256: hexSum(nil)})
	if !errors.Is(err, ErrRefused) {
		t.Errorf("404: got %v, want ErrRefused", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, err = readAll(t, Options{URL: "http://" + dead + "/img", SHA256: hexSum(nil), GiveUp: 500 * time.Millisecond})
	if !errors.Is(err, ErrGaveUp) {
		t.Errorf("dead server: got %v, want ErrGaveUp", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("gave up after %s, GiveUp was 500ms", d)
	}
}

func TestStalledResponseIsAbandonedAndResumed(t *testing.T) {
	img := image(2 << 20)
	h := &stopAfter{b: img, cut: 1 << 20}
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h.onCut = func() { <-release } // the peer goes silent, the connection stays open
	addr, _ := serve(t, h)
	start := time.Now()
	got, err := readAll(t, Options{URL: "http://" + addr + "/img", Size: int64(len(img)), SHA256: hexSum(img), Stall: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img) || h.ranged.Load() == 0 {
		t.Fatalf("equal %v, %d ranged requests", bytes.Equal(got, img), h.ranged.Load())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s with a 300ms stall limit", d)
	}
}

// A corrupted compressed file usually breaks the decompressor before the
// end: the error must still say that the file does not match its sha256
// (the cause an operator can act on), naming both hashes.
func TestCorruptCompressedFileFailsNamingTheHash(t *testing.T) {
	img := image(2 << 20)
	var zs bytes.Buffer
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(img)
	zw.Close()
	good := zs.Bytes()
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 0xff
	addr, _ := serve(t, &stopAfter{b: bad, cut: 1 << 30})
	_, err := readAll(t, Options{URL: "http://" + addr + "/img", Size: int64(len(good)), SHA256: hexSum(good), Compression: "zstd"})
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("got %v, want ErrMismatch", err)
	}
	if !strings.Contains(err.Error(), hexSum(good)) || !strings.Contains(err.Error(), hexSum(bad)) {
		t.Errorf("%v does not name the expected and actual hashes", err)
	}
}
