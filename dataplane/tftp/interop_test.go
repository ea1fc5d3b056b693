package tftp_test

// Interop with real, independent TFTP clients: tftp-hpa, atftp and curl as
// processes, github.com/pin/tftp/v3 in-process. Each fetches files whose
// sizes sit on the edges of the protocol (empty, one byte, exactly one block,
// many blocks, 40 MiB which rolls the 16-bit block number over at 512-byte
// blocks) and the bytes must match exactly.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	pintftp "github.com/pin/tftp/v3"

	"osim/dataplane/tftp"
	"osim/internal/testlab"
)

// interopBlksize is the block size negotiated by the clients that can: the
// engine's default cap, one 1500-byte Ethernet frame.
const interopBlksize = 1468

type interopFile struct {
	name string
	data []byte
	big  bool // skipped with -short
}

// interopFiles writes the edge-case files into root.
func interopFiles(t *testing.T, root string) []interopFile {
	files := []interopFile{
		{name: "empty", data: []byte{}},
		{name: "one-byte", data: []byte{0x5a}},
		{name: "one-block-512", data: patternBytes(512, 512)},
		{name: "one-block-" + strconv.Itoa(interopBlksize), data: patternBytes(interopBlksize, interopBlksize)},
		{name: "boot/many-blocks.bin", data: patternBytes(3, 300_000+7)},
	}
	if !testing.Short() {
		files = append(files, interopFile{name: "big-40MiB.img", data: patternBytes(40, 40<<20), big: true})
	}
	for _, f := range files {
		writeFile(t, root, f.name, f.data)
	}
	return files
}

// interopClient is one client in one configuration.
type interopClient struct {
	name, bin, pkg string
	blksize        int // block size this configuration ends up with
	// get fetches remote into local within ctx; a non-nil error or any sign
	// of failure in the client's output fails the case.
	get func(ctx context.Context, port int, remote, local string, size int) error
}

// runTool runs a client process and returns its combined output.
func runTool(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%s %s: %w (output: %s)", bin, strings.Join(args, " "), ctx.Err(), out)
	}
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w (output: %s)", bin, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// tftpHpaFailed spots tftp-hpa's failures: it exits 0 even when the server
// refused or the transfer timed out.
func tftpHpaFailed(out string) error {
	for _, s := range []string{"Error code", "Transfer timed out", "tftp:"} {
		if strings.Contains(out, s) {
			return fmt.Errorf("tftp-hpa reported failure: %s", out)
		}
	}
	return nil
}

func atftpGet(opts ...string) func(ctx context.Context, port int, remote, local string, size int) error {
	return func(ctx context.Context, port int, remote, local string, _ int) error {
		args := []string{}
		for _, o := range opts {
			args = append(args, "--option", o)
		}
		args = append(args, "-g", "-r", remote, "-l", local, "127.0.0.1", strconv.Itoa(port))
		_, err := runTool(ctx, "atftp", args...)
		return err
	}
}

func curlGet(blksize int) func(ctx context.Context, port int, remote, local string, size int) error {
	return func(ctx context.Context, port int, remote, local string, size int) error {
		args := []string{"-sS", "-o", local}
		if blksize != 0 {
			args = append(args, "--tftp-blksize", strconv.Itoa(blksize))
		}
		if size == 0 {
			// curl refuses an OACK carrying "tsize 0" on a download
			// (lib/tftp.c tftp_parse_option_ack: "invalid tsize -:0:- value
			// in OACK packet"), though RFC 2349 makes 0 the right answer for
			// an empty file. Without options the exchange is plain RFC 1350.
			args = append(args, "--tftp-no-options")
		}
		args = append(args, fmt.Sprintf("tftp://127.0.0.1:%d/%s", port, remote))
		_, err := runTool(ctx, "curl", args...)
		return err
	}
}

func pinGet(blksize int) func(ctx context.Context, port int, remote, local string, size int) error {
	return func(ctx context.Context, port int, remote, local string, size int) error {
		c, err := pintftp.NewClient(fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return err
		}
		c.SetTimeout(2 * time.Second)
		if blksize != 0 {
			c.SetBlockSize(blksize)
			c.RequestTSize(true)
		}
		wt, err := c.Receive(remote, "octet")
		if err != nil {
			return err
		}
		if blksize != 0 {
			n, ok := wt.(pintftp.IncomingTransfer).Size()
			if !ok || n != int64(size) {
				return fmt.Errorf("tsize in OACK: got %d (present %v), want %d", n, ok, size)
			}
		}
		var buf bytes.Buffer
		if _, err := wt.WriteTo(&buf); err != nil {
			return err
		}
		return os.WriteFile(local, buf.Bytes(), 0o644)
	}
}

func interopClients() []interopClient {
	hpaGet := func(ctx context.Context, port int, remote, local string, _ int) error {
		out, err := runTool(ctx, "tftp", "-v", "127.0.0.1", strconv.Itoa(port), "-m", "binary", "-c", "get", remote, local)
		if err != nil {
			return err
		}
		return tftpHpaFailed(out)
	}
	b := strconv.Itoa(interopBlksize)
	return []interopClient{
		// tftp-hpa 5.2 negotiates no options: RFC 1350 lockstep, 512 bytes.
		{name: "tftp-hpa", bin: "tftp", pkg: "tftp-hpa", blksize: 512, get: hpaGet},
		{name: "atftp/plain", bin: "atftp", pkg: "atftp", blksize: 512, get: atftpGet()},
		{name: "atftp/tsize", bin: "atftp", pkg: "atftp", blksize: 512, get: atftpGet("tsize 0")},
		{name: "atftp/blksize-window", bin: "atftp", pkg: "atftp", blksize: interopBlksize,
			get: atftpGet("blksize "+b, "windowsize 16", "tsize 0")},
		{name: "curl/default", bin: "curl", pkg: "curl", blksize: 512, get: curlGet(0)},
		{name: "curl/blksize", bin: "curl", pkg: "curl", blksize: interopBlksize, get: curlGet(interopBlksize)},
		{name: "pin-tftp/default", blksize: 512, get: pinGet(0)},
		{name: "pin-tftp/blksize-tsize", blksize: interopBlksize, get: pinGet(interopBlksize)},
	}
}

func TestInteropClientsReceiveExactBytes(t *testing.T) {
	root := t.TempDir()
	files := interopFiles(t, root)
	ts := startServer(t, tftp.Config{}, root)
	port := int(ts.addr.Port())
	t.Run("clients", func(t *testing.T) {
		for _, c := range interopClients() {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				if c.bin != "" {
					testlab.RequireTool(t, c.bin, c.pkg)
				}
				for _, f := range files {
					if strings.HasPrefix(f.name, "one-block-") && f.name != "one-block-512" &&
						f.name != "one-block-"+strconv.Itoa(c.blksize) {
						continue
					}
					t.Run(f.name, func(t *testing.T) {
						limit := 20 * time.Second
						if f.big {
							limit = 3 * time.Minute
						}
						ctx, cancel := context.WithTimeout(t.Context(), limit)
						defer cancel()
						local := filepath.Join(t.TempDir(), "got")
						start := time.Now()
						if err := c.get(ctx, port, f.name, local, len(f.data)); err != nil {
							t.Fatalf("%s get %s: %v", c.name, f.name, err)
						}
						got, err := os.ReadFile(local)
						if err != nil {
							t.Fatalf("%s wrote no file: %v", c.name, err)
						}
						if sha256.Sum256(got) != sha256.Sum256(f.data) {
							sameBytes(t, c.name+" "+f.name, got, f.data)
						}
						if f.big {
							t.Logf("%s: %d bytes in %v", c.name, len(got), time.Since(start).Round(time.Millisecond))
						}
					})
				}
			})
		}
	})
	ts.waitIdle(t, 5*time.Second)
	if n := ts.metric(t, "osim_tftp_transfers_failed_total"); n != 0 {
		t.Errorf("server counted %v failed transfers, want 0", n)
	}
}

// netasciiText has bare LF, bare CR, CRLF, CR at the end and line ends
// straddling block boundaries once expanded.
func netasciiText() []byte {
	var b bytes.Buffer
	for i := range 300 {
		fmt.Fprintf(&b, "line %d", i)
		switch i % 4 {
		case 0:
			b.WriteString("\n")
		case 1:
			b.WriteString("\r")
		case 2:
			b.WriteString("\r\n")
		case 3:
			b.WriteString("\n\r\n\r")
		}
	}
	b.WriteString("\r")
	return b.Bytes()
}

func TestInteropNetasciiRoundTripsLineEnds(t *testing.T) {
	root := t.TempDir()
	text := netasciiText()
	writeFile(t, root, "text.cfg", text)
	ts := startServer(t, tftp.Config{}, root)
	port := strconv.Itoa(int(ts.addr.Port()))

	t.Run("tftp-hpa", func(t *testing.T) {
		testlab.RequireTool(t, "tftp", "tftp-hpa")
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		local := filepath.Join(t.TempDir(), "text.cfg")
		out, err := runTool(ctx, "tftp", "-v", "127.0.0.1", port, "-m", "ascii", "-c", "get", "text.cfg", local)
		if err == nil {
			err = tftpHpaFailed(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(local)
		if err != nil {
			t.Fatal(err)
		}
		sameBytes(t, "tftp-hpa netascii get", got, text)
	})
	t.Run("pin-tftp", func(t *testing.T) {
		c, err := pintftp.NewClient(ts.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetTimeout(2 * time.Second)
		wt, err := c.Receive("text.cfg", "netascii")
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if _, err := wt.WriteTo(&got); err != nil {
			t.Fatal(err)
		}
		sameBytes(t, "pin/tftp netascii get", got.Bytes(), text)
	})
	ts.waitIdle(t, 5*time.Second)
}

// hpaPut uploads local as remote with tftp-hpa; it returns the client's
// output, and an error when the client reported one.
func hpaPut(ctx context.Context, port int, mode, local, remote string) (string, error) {
	out, err := runTool(ctx, "tftp", "-v", "127.0.0.1", strconv.Itoa(port), "-m", mode, "-c", "put", local, remote)
	if err != nil {
		return out, err
	}
	return out, tftpHpaFailed(out)
}

func pinPut(addr string, blksize int, remote string, data []byte) error {
	c, err := pintftp.NewClient(addr)
	if err != nil {
		return err
	}
	c.SetTimeout(2 * time.Second)
	if blksize != 0 {
		c.SetBlockSize(blksize)
	}
	rf, err := c.Send(remote, "octet")
	if err != nil {
		return err
	}
	_, err = rf.ReadFrom(bytes.NewReader(data))
	return err
}

// uploader is one client's way to put a file; it returns the client's
// failure (with the server's message in it) or nil.
type uploader struct {
	name, bin, pkg string
	put            func(t *testing.T, ts *testServer, remote string, data []byte) error
}

func uploaders() []uploader {
	return []uploader{
		{name: "tftp-hpa", bin: "tftp", pkg: "tftp-hpa", put: func(t *testing.T, ts *testServer, remote string, data []byte) error {
			local := filepath.Join(t.TempDir(), "upload")
			if err := os.WriteFile(local, data, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			_, err := hpaPut(ctx, int(ts.addr.Port()), "binary", local, remote)
			return err
		}},
		{name: "pin-tftp/default", put: func(t *testing.T, ts *testServer, remote string, data []byte) error {
			return pinPut(ts.addr.String(), 0, remote, data)
		}},
		{name: "pin-tftp/blksize", put: func(t *testing.T, ts *testServer, remote string, data []byte) error {
			return pinPut(ts.addr.String(), interopBlksize, remote, data)
		}},
	}
}

// readUpload reads a stored upload; it must be in place as soon as the
// client reported success.
func readUpload(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("client saw success, but the upload is not stored: %v", err)
	}
	return data
}

func TestInteropUploadsStoreExactBytesAndNeverOverwrite(t *testing.T) {
	sizes := []int{0, 1, 511, 512, interopBlksize, 300_000 + 3}
	for _, u := range uploaders() {
		t.Run(u.name, func(t *testing.T) {
			if u.bin != "" {
				testlab.RequireTool(t, u.bin, u.pkg)
			}
			t.Parallel()
			up := t.TempDir()
			ts := startServer(t, tftp.Config{UploadDir: up, Timeout: 200 * time.Millisecond}, t.TempDir())
			for _, size := range sizes {
				name := fmt.Sprintf("logs/install-%d.log", size)
				if err := os.MkdirAll(filepath.Join(up, "logs"), 0o755); err != nil {
					t.Fatal(err)
				}
				data := patternBytes(uint64(size)+7, size)
				if err := u.put(t, ts, name, data); err != nil {
					t.Fatalf("put %s (%d bytes): %v", name, size, err)
				}
				sameBytes(t, "stored "+name, readUpload(t, filepath.Join(up, name)), data)

				// Same name again, other bytes: refused with "file exists"; the
				// first upload stays as it was.
				err := u.put(t, ts, name, []byte("second upload must not land"))
				if err == nil || !strings.Contains(err.Error(), "6") {
					t.Errorf("second put of %s: got %v, want error 6 (file exists)", name, err)
				}
				ts.waitIdle(t, 5*time.Second)
				got, _ := os.ReadFile(filepath.Join(up, name))
				sameBytes(t, "after a refused second put "+name, got, data)
			}
			ts.waitIdle(t, 5*time.Second)
			if n := ts.metric(t, "osim_tftp_refusals_total", "reason", "exists"); n != float64(len(sizes)) {
				t.Errorf("refusals{reason=exists} = %v, want %d", n, len(sizes))
			}
			// Nothing but the uploads themselves is left behind (no temp files).
			ents, _ := os.ReadDir(filepath.Join(up, "logs"))
			if len(ents) != len(sizes) {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("upload folder holds %v, want only the %d uploads", names, len(sizes))
			}
		})
	}
}

func TestInteropNetasciiUploadStoresLocalLineEnds(t *testing.T) {
	testlab.RequireTool(t, "tftp", "tftp-hpa")
	up := t.TempDir()
	ts := startServer(t, tftp.Config{UploadDir: up, Timeout: 200 * time.Millisecond}, t.TempDir())
	text := netasciiText()
	local := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(local, text, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := hpaPut(ctx, int(ts.addr.Port()), "ascii", local, "notes.txt"); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "netascii upload", readUpload(t, filepath.Join(up, "notes.txt")), text)
}

func TestInteropUploadsRefusedWithoutUploadDir(t *testing.T) {
	for _, u := range uploaders() {
		t.Run(u.name, func(t *testing.T) {
			if u.bin != "" {
				testlab.RequireTool(t, u.bin, u.pkg)
			}
			root := t.TempDir()
			ts := startServer(t, tftp.Config{}, root)
			err := u.put(t, ts, "evil.efi", []byte("replace the boot loader"))
			if err == nil || !strings.Contains(err.Error(), "2") {
				t.Fatalf("put without an upload folder: got %v, want error 2 (access violation)", err)
			}
			if _, err := os.Stat(filepath.Join(root, "evil.efi")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("refused upload left a file in the served root: %v", err)
			}
			if n := ts.metric(t, "osim_tftp_refusals_total", "reason", "write_disabled"); n != 1 {
				t.Errorf("refusals{reason=write_disabled} = %v, want 1", n)
			}
		})
	}
}

// TestInteropUploadIsInPlaceWhenClientSeesSuccess: once a client has the
// final ACK it reports success, so the upload must be stored under its name
// by then, and a second upload of that name must be refused, not acknowledged
// and then thrown away.
func TestInteropUploadIsInPlaceWhenClientSeesSuccess(t *testing.T) {
	up := t.TempDir()
	// The engine's default timeout: the window this test looks at is one timeout long.
	ts := startServer(t, tftp.Config{UploadDir: up}, t.TempDir())
	first := patternBytes(11, 10_000)
	if err := pinPut(ts.addr.String(), 0, "inventory.json", first); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(up, "inventory.json")); err != nil {
		t.Errorf("client saw success but the upload is not in place: %v", err)
	}
	err := pinPut(ts.addr.String(), 0, "inventory.json", []byte("second"))
	if err == nil {
		t.Errorf("second upload of the same name right after the first: client saw success, want error 6 (file exists)")
	}
	ts.waitIdle(t, 10*time.Second)
	got, _ := os.ReadFile(filepath.Join(up, "inventory.json"))
	sameBytes(t, "stored upload", got, first)
}
