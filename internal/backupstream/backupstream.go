// Package backupstream frames an osim backup: the manager's MDB
// (controlplane/mdb) and a boot server's data dir (internal/bootd) are
// written as one stream of records,
//
//	"OSIM-BACKUP\x01"
//	'H' len JSON                                  the header
//	<type> len bytes [len bytes ...]              records (e.g. 'K' key value)
//	'B' 64 hex digits of sha256, len, bytes       a blob, named by its content
//	'E' len JSON sha256(everything before it)     the end and the checksum
//
// Lengths are unsigned varints. What the header, the end and the records
// hold is the caller's; this package writes and reads the frames, checks
// every blob against its name and the checksum at the end, so that a
// backup cut short or altered is refused (ErrIncomplete), never half read.
package backupstream

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Magic opens every backup; its last byte is the framing's version.
var Magic = []byte("OSIM-BACKUP\x01")

// Record types this package frames itself.
const (
	TypeHeader = 'H'
	TypeKey    = 'K' // a store's key and value (KeyValue)
	TypeBlob   = 'B'
	TypeEnd    = 'E'
)

// Limits of a key record's fields: Badger's own key limit, and a value
// far above any the stores write.
const (
	MaxKey   = 1 << 16
	MaxValue = 64 << 20
)

// ErrIncomplete: the stream is not a whole backup (cut short, altered,
// or not a backup at all).
var ErrIncomplete = errors.New("not a whole osim backup")

// Writer frames records and hashes everything it writes.
type Writer struct {
	w   *bufio.Writer
	sum hash.Hash
	buf [binary.MaxVarintLen64]byte
}

// NewWriter starts a backup on w: the magic, then the header record.
func NewWriter(w io.Writer, header []byte) (*Writer, error) {
	bw := &Writer{w: bufio.NewWriterSize(w, 1<<20), sum: sha256.New()}
	if err := bw.write(Magic); err != nil {
		return nil, err
	}
	return bw, bw.Record(TypeHeader, header)
}

func (b *Writer) write(p []byte) error {
	b.sum.Write(p)
	_, err := b.w.Write(p)
	return err
}

func (b *Writer) uvarint(n uint64) error {
	return b.write(b.buf[:binary.PutUvarint(b.buf[:], n)])
}

// Record writes a record of type typ: each field with its length.
func (b *Writer) Record(typ byte, fields ...[]byte) error {
	if err := b.write([]byte{typ}); err != nil {
		return err
	}
	for _, f := range fields {
		if err := b.uvarint(uint64(len(f))); err != nil {
			return err
		}
		if err := b.write(f); err != nil {
			return err
		}
	}
	return nil
}

// Blob writes a blob record: size bytes of r, whose sha256 must be sha
// (64 lowercase hex digits). A blob whose content is not its name fails
// the backup here, rather than making a backup no restore accepts.
func (b *Writer) Blob(sha string, size int64, r io.Reader) error {
	if !IsSHA256(sha) {
		return fmt.Errorf("backup: a blob named %q (not a sha256)", sha)
	}
	if err := b.write([]byte{TypeBlob}); err != nil {
		return err
	}
	if err := b.write([]byte(sha)); err != nil {
		return err
	}
	if err := b.uvarint(uint64(size)); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(writerFunc(b.write), h), io.LimitReader(r, size))
	if err != nil {
		return fmt.Errorf("backup: blob %s: %w", sha, err)
	}
	if n != size {
		return fmt.Errorf("backup: blob %s: %d of %d bytes read", sha, n, size)
	}
	if hex.EncodeToString(h.Sum(nil)) != sha {
		return fmt.Errorf("backup: blob %s: its content does not match its name (a damaged file)", sha)
	}
	return nil
}

// End writes the end record and the checksum, and flushes.
func (b *Writer) End(end []byte) error {
	if err := b.Record(TypeEnd, end); err != nil {
		return err
	}
	if _, err := b.w.Write(b.sum.Sum(nil)); err != nil {
		return err
	}
	return b.w.Flush()
}

type writerFunc func([]byte) error

func (f writerFunc) Write(p []byte) (int, error) {
	if err := f(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// IsSHA256 reports whether s names a blob: 64 lowercase hex digits.
func IsSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Reader reads a backup's records, hashing every byte it consumes.
type Reader struct {
	raw *bufio.Reader
	h   hash.Hash
}

// NewReader checks r's magic and answers the header record's content
// (at most maxHeader bytes).
func NewReader(r io.Reader, maxHeader uint64) (*Reader, []byte, error) {
	br := &Reader{raw: bufio.NewReaderSize(r, 1<<20), h: sha256.New()}
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != string(Magic) {
		return nil, nil, fmt.Errorf("%w: no osim backup header", ErrIncomplete)
	}
	if typ, err := br.Next(); err != nil {
		return nil, nil, err
	} else if typ != TypeHeader {
		return nil, nil, fmt.Errorf("%w: a record %q where its header belongs", ErrIncomplete, typ)
	}
	head, err := br.Field(maxHeader)
	return br, head, err
}

func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.raw.Read(p)
	r.h.Write(p[:n])
	return n, err
}

// ReadByte reads one hashed byte.
func (r *Reader) ReadByte() (byte, error) {
	c, err := r.raw.ReadByte()
	if err == nil {
		r.h.Write([]byte{c})
	}
	return c, err
}

// Next reads the next record's type.
func (r *Reader) Next() (byte, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return 0, fmt.Errorf("%w: it ends before its end record (%v)", ErrIncomplete, err)
	}
	return typ, nil
}

// Field reads one field of the current record, of at most max bytes.
func (r *Reader) Field(max uint64) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil || n > max {
		return nil, fmt.Errorf("%w: a field of %d bytes (%v)", ErrIncomplete, n, err)
	}
	b := make([]byte, n)
	if _, err = io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: it ends inside a record (%v)", ErrIncomplete, err)
	}
	return b, nil
}

// KeyValue reads a key record's two fields (after its type).
func (r *Reader) KeyValue() (key, val []byte, err error) {
	if key, err = r.Field(MaxKey); err != nil {
		return nil, nil, err
	}
	if val, err = r.Field(MaxValue); err != nil {
		return nil, nil, err
	}
	return key, val, nil
}

// Blob reads a blob record (after its type) into the file path(sha)
// names, through a temporary file beside it that is synced and renamed
// once its content matches its name. It answers the blob's name and size.
func (r *Reader) Blob(path func(sha string) string) (sha string, n int64, err error) {
	name := make([]byte, 64)
	if _, err := io.ReadFull(r, name); err != nil {
		return "", 0, fmt.Errorf("%w: it ends inside a blob", ErrIncomplete)
	}
	sha = string(name)
	if !IsSHA256(sha) {
		return sha, 0, fmt.Errorf("%w: a blob named %q", ErrIncomplete, sha)
	}
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return sha, 0, fmt.Errorf("%w: it ends inside a blob", ErrIncomplete)
	}
	p := path(sha)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return sha, 0, err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".restore-*")
	if err != nil {
		return sha, 0, err
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err = io.Copy(io.MultiWriter(f, h), io.LimitReader(r, int64(size)))
	if err == nil && uint64(n) != size {
		err = fmt.Errorf("%w: it ends inside a blob", ErrIncomplete)
	}
	if err == nil {
		err = f.Chmod(0o644) // as the stores write their blobs
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return sha, n, err
	}
	if hex.EncodeToString(h.Sum(nil)) != sha {
		return sha, n, fmt.Errorf("%w: blob %s: its %d bytes do not match its digest", ErrIncomplete, sha, n)
	}
	return sha, n, os.Rename(f.Name(), p)
}

// End reads the end record (after its type, at most max bytes) and the
// checksum, checks it, and that nothing follows; it answers the end
// record's content.
func (r *Reader) End(max uint64) ([]byte, error) {
	end, err := r.Field(max)
	if err != nil {
		return nil, err
	}
	want, got := r.h.Sum(nil), make([]byte, sha256.Size)
	if _, err := io.ReadFull(r.raw, got); err != nil {
		return nil, fmt.Errorf("%w: no checksum (%v)", ErrIncomplete, err)
	}
	if string(want) != string(got) {
		return nil, fmt.Errorf("%w: its checksum does not match its content", ErrIncomplete)
	}
	if _, err := r.raw.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("%w: bytes follow its checksum", ErrIncomplete)
	}
	return end, nil
}

// Check reads a whole backup file and reports whether its checksum
// matches its content: a backup cut short or altered is refused without
// reading its records.
func Check(path string) (size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() < int64(len(Magic)+sha256.Size) {
		return fi.Size(), fmt.Errorf("%s is %w (%d bytes)", path, ErrIncomplete, fi.Size())
	}
	h := sha256.New()
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(io.TeeReader(f, h), magic); err != nil || string(magic) != string(Magic) {
		return fi.Size(), fmt.Errorf("%s is not an osim backup", path)
	}
	if _, err := io.CopyN(h, f, fi.Size()-int64(len(magic))-sha256.Size); err != nil {
		return fi.Size(), err
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, want); err != nil {
		return fi.Size(), err
	}
	if string(h.Sum(nil)) != string(want) {
		return fi.Size(), fmt.Errorf("%s is %w: its checksum does not match (cut short or altered)", path, ErrIncomplete)
	}
	return fi.Size(), nil
}

// ErrExists: WriteFile's path exists; a backup is never replaced.
var ErrExists = errors.New("exists: give a new file")

// WriteFile writes a backup to path through write: into a temporary file
// beside it, synced, its checksum read back, then linked into place. The
// link fails if path appeared meanwhile, so an existing file is never
// replaced, and a failed backup leaves nothing at path. It answers the
// file's size.
func WriteFile(path string, write func(io.Writer) error) (int64, error) {
	if _, err := os.Lstat(path); err == nil {
		return 0, fmt.Errorf("%s %w", path, ErrExists)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".osim-backup-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // after the link, the name only
	err = write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	size, err := Check(tmp.Name())
	if err != nil {
		return size, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return size, fmt.Errorf("%s %w", path, ErrExists)
		}
		return size, err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil { // the new name survives a crash
		d.Sync()
		d.Close()
	}
	return size, nil
}

// TargetDir readies dir for a restore: it must not exist or be empty,
// and is made (0700) when missing. undo removes what the restore wrote,
// and dir itself only if TargetDir made it: an existing empty dir (a
// mount point, a unit's StateDirectory) stays.
func TargetDir(dir string) (undo func(), err error) {
	entries, err := os.ReadDir(dir)
	existed := err == nil
	switch {
	case existed && len(entries) > 0:
		return nil, fmt.Errorf("%s is not empty: restore into a new or empty dir", dir)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return func() {
		if !existed {
			os.RemoveAll(dir)
			return
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}, nil
}

// Counts are what a stream holds, as its end record says (the fields
// keys, blobs and blob_bytes of the writer's end JSON).
type Counts struct {
	Keys      int   `json:"keys,omitempty"`
	Blobs     int   `json:"blobs,omitempty"`
	BlobBytes int64 `json:"blob_bytes,omitempty"`
}

// Restore reads every record after the header: each key record goes to
// key, each blob into the file blobPath names; then the end record, whose
// counts must be what was read. It answers the end record's content.
func (r *Reader) Restore(key func(k, v []byte) error, blobPath func(sha string) string) ([]byte, error) {
	var counted Counts
	for {
		typ, err := r.Next()
		if err != nil {
			return nil, err
		}
		switch typ {
		case TypeKey:
			k, v, err := r.KeyValue()
			if err != nil {
				return nil, err
			}
			if err := key(k, v); err != nil {
				return nil, err
			}
			counted.Keys++
		case TypeBlob:
			_, n, err := r.Blob(blobPath)
			if err != nil {
				return nil, err
			}
			counted.Blobs++
			counted.BlobBytes += n
		case TypeEnd:
			b, err := r.End(1 << 20)
			if err != nil {
				return nil, err
			}
			var end Counts
			if err := json.Unmarshal(b, &end); err != nil {
				return nil, fmt.Errorf("%w: its end record: %v", ErrIncomplete, err)
			}
			if end != counted {
				return nil, fmt.Errorf("%w: its end counts %d keys and %d blobs, the stream held %d and %d",
					ErrIncomplete, end.Keys, end.Blobs, counted.Keys, counted.Blobs)
			}
			return b, nil
		default:
			return nil, fmt.Errorf("%w: an unknown record %q", ErrIncomplete, typ)
		}
	}
}
