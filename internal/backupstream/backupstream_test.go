package backupstream

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func shaOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// sample is a small stream: a header, two records, a blob, the end.
func sample(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, []byte(`{"h":1}`))
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("the blob's content")
	for _, err := range []error{
		w.Record('K', []byte("key/1"), []byte("value 1")),
		w.Record('K', []byte("key/2"), nil),
		w.Blob(shaOf(blob), int64(len(blob)), bytes.NewReader(blob)),
		w.End([]byte(`{"e":1}`)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// readAll reads a stream as a restore does, blobs into dir.
func readAll(data []byte, dir string) (head, end []byte, recs []string, err error) {
	r, head, err := NewReader(bytes.NewReader(data), 1<<10)
	if err != nil {
		return nil, nil, nil, err
	}
	for {
		typ, err := r.Next()
		if err != nil {
			return head, nil, recs, err
		}
		switch typ {
		case 'K':
			k, err := r.Field(1 << 10)
			if err != nil {
				return head, nil, recs, err
			}
			v, err := r.Field(1 << 10)
			if err != nil {
				return head, nil, recs, err
			}
			recs = append(recs, string(k)+"="+string(v))
		case TypeBlob:
			sha, n, err := r.Blob(func(sha string) string { return filepath.Join(dir, sha) })
			if err != nil {
				return head, nil, recs, err
			}
			recs = append(recs, "blob "+sha+" "+strconv.FormatInt(n, 10))
		case TypeEnd:
			end, err := r.End(1 << 10)
			return head, end, recs, err
		default:
			return head, nil, recs, fmt.Errorf("%w: an unknown record %q", ErrIncomplete, typ) // as the callers say
		}
	}
}

// What the writer frames the reader reads back, blob included.
func TestStreamReadsBackWhatWasWritten(t *testing.T) {
	data := sample(t)
	dir := t.TempDir()
	head, end, recs, err := readAll(data, dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(head) != `{"h":1}` || string(end) != `{"e":1}` || len(recs) != 3 || recs[0] != "key/1=value 1" || recs[1] != "key/2=" {
		t.Fatalf("read %q %q %q", head, end, recs)
	}
	b, err := os.ReadFile(filepath.Join(dir, shaOf([]byte("the blob's content"))))
	if err != nil || string(b) != "the blob's content" {
		t.Fatalf("blob: %q %v", b, err)
	}
	path := filepath.Join(t.TempDir(), "b")
	os.WriteFile(path, data, 0o644)
	if n, err := Check(path); err != nil || n != int64(len(data)) {
		t.Fatalf("Check of a whole stream: %d %v", n, err)
	}
}

// Every cut, every altered byte and anything appended is refused, by the
// reader and by Check.
func TestEveryCutOrAlteredByteIsRefused(t *testing.T) {
	data := sample(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "b")
	refused := func(what string, d []byte) {
		t.Helper()
		if _, _, _, err := readAll(d, t.TempDir()); !errors.Is(err, ErrIncomplete) {
			t.Errorf("%s: read %v, want ErrIncomplete", what, err)
		}
		os.WriteFile(path, d, 0o644)
		if _, err := Check(path); err == nil {
			t.Errorf("%s: Check accepted it", what)
		}
	}
	for n := range len(data) {
		refused("cut at "+strconv.Itoa(n), data[:n])
	}
	for i := range data {
		d := bytes.Clone(data)
		d[i] ^= 0x01
		refused("bit flipped at "+strconv.Itoa(i), d)
	}
	refused("a byte appended", append(bytes.Clone(data), 0))
}

// A blob whose content is not its name fails the backup, rather than
// making one no restore accepts.
func TestWriterRefusesABlobThatIsNotItsName(t *testing.T) {
	w, err := NewWriter(&bytes.Buffer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Blob(shaOf([]byte("right")), 5, strings.NewReader("wrong")); err == nil || !strings.Contains(err.Error(), "does not match its name") {
		t.Errorf("a damaged blob: %v", err)
	}
	if err := w.Blob("../etc/passwd", 5, strings.NewReader("wrong")); err == nil {
		t.Error("a blob named by a path was written")
	}
	if err := w.Blob(shaOf([]byte("right")), 5, strings.NewReader("rig")); err == nil || !strings.Contains(err.Error(), "3 of 5 bytes") {
		t.Errorf("a short blob: %v", err)
	}
}

func TestWriteFileNeverReplacesAFileAndLeavesNothingOnFailure(t *testing.T) {
	dir := t.TempDir()
	good := sample(t)
	path := filepath.Join(dir, "b.osimbak")
	size, err := WriteFile(path, func(w io.Writer) error { _, err := w.Write(good); return err })
	if err != nil || size != int64(len(good)) {
		t.Fatalf("WriteFile: %d bytes, %v", size, err)
	}
	if st, _ := os.Stat(path); st == nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the backup's mode: %v, want 0600 (it holds credentials)", st)
	}
	// An existing file is refused and kept.
	if _, err := WriteFile(path, func(w io.Writer) error { _, err := w.Write(good); return err }); !errors.Is(err, ErrExists) {
		t.Errorf("over an existing file: %v, want ErrExists", err)
	}
	// One appearing while the backup is written is not replaced either.
	raced := filepath.Join(dir, "raced.osimbak")
	_, err = WriteFile(raced, func(w io.Writer) error {
		if err := os.WriteFile(raced, []byte("someone else's"), 0o644); err != nil {
			return err
		}
		_, err := w.Write(good)
		return err
	})
	if b, _ := os.ReadFile(raced); !errors.Is(err, ErrExists) || string(b) != "someone else's" {
		t.Errorf("a file made meanwhile: %v, content %q", err, b)
	}
	// A failed or cut backup leaves no file and no temporary.
	for name, write := range map[string]func(io.Writer) error{
		"failed": func(w io.Writer) error { w.Write(good[:10]); return errors.New("the manager went away") },
		"cut":    func(w io.Writer) error { _, err := w.Write(good[:len(good)-1]); return err },
	} {
		p := filepath.Join(dir, name+".osimbak")
		if _, err := WriteFile(p, write); err == nil {
			t.Errorf("%s: no error", name)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: a file was left at %s", name, p)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("left in the dir: %v, want the two backups only", ents)
	}
}

func TestTargetDirUndoKeepsADirItDidNotMake(t *testing.T) {
	parent := t.TempDir()
	existing := filepath.Join(parent, "mountpoint")
	if err := os.Mkdir(existing, 0o750); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(parent, "new")
	for _, dir := range []string{existing, missing} {
		undo, err := TargetDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "half"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		undo()
	}
	if ents, err := os.ReadDir(existing); err != nil || len(ents) != 0 {
		t.Errorf("an existing dir after undo: %v, %v; want it kept, empty", ents, err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a dir TargetDir made is still there after undo: %v", err)
	}
	if err := os.WriteFile(filepath.Join(existing, "data"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := TargetDir(existing); err == nil {
		t.Error("a non-empty dir was accepted")
	}
}
