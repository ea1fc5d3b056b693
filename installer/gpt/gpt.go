// Package gpt reads and edits GUID partition tables (UEFI spec 2.10,
// section 5.3) in Go: it finds an installed system's root partition and
// grows a written image's last partition to the end of a larger disk,
// moving the backup table there and recomputing both CRC32s. Create
// writes a fresh table (tests and image builders).
package gpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// Well-known partition types.
const (
	TypeLinuxRootX86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
	TypeLinuxData       = "0fc63daf-8483-4772-8e79-3d69d8477de4"
	TypeEFISystem       = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
	TypeBIOSBoot        = "21686148-6449-6e6f-744e-656564454649"
)

const (
	headerSize = 92
	entrySize  = 128
	numEntries = 128
	signature  = "EFI PART"
)

// ErrNoGPT: the disk holds no valid GPT.
var ErrNoGPT = errors.New("no valid GPT")

// Partition is one used entry.
type Partition struct {
	Index       int    // 1-based, as the kernel names partitions
	Type        string // GUID, lower case
	GUID        string
	First, Last int64 // LBAs, inclusive
	Name        string
}

// Table is a parsed primary GPT.
type Table struct {
	SectorSize int64
	header     []byte // headerSize bytes
	entries    []byte
	Partitions []Partition
}

func (t *Table) u64(off int) int64 { return int64(binary.LittleEndian.Uint64(t.header[off:])) }

// BackupLBA is where the table says its backup header is.
func (t *Table) BackupLBA() int64 { return t.u64(32) }

// LastUsable is the last LBA a partition may use.
func (t *Table) LastUsable() int64 { return t.u64(48) }

// Read parses and checks the primary GPT of a disk with ss-byte sectors.
func Read(r io.ReaderAt, ss int64) (*Table, error) {
	return readAt(r, ss, 1)
}

// ReadBackup parses and checks the backup GPT at lba.
func ReadBackup(r io.ReaderAt, ss, lba int64) (*Table, error) {
	return readAt(r, ss, lba)
}

func readAt(r io.ReaderAt, ss, lba int64) (*Table, error) {
	h := make([]byte, ss)
	if _, err := r.ReadAt(h, lba*ss); err != nil {
		return nil, fmt.Errorf("gpt: reading header at LBA %d: %w", lba, err)
	}
	if string(h[:8]) != signature {
		return nil, fmt.Errorf("gpt: %w at LBA %d: no signature", ErrNoGPT, lba)
	}
	hs := binary.LittleEndian.Uint32(h[12:])
	if hs < headerSize || int64(hs) > ss {
		return nil, fmt.Errorf("gpt: %w at LBA %d: header size %d", ErrNoGPT, lba, hs)
	}
	t := &Table{SectorSize: ss, header: append([]byte(nil), h[:hs]...)}
	if got, want := headerCRC(t.header), binary.LittleEndian.Uint32(h[16:]); got != want {
		return nil, fmt.Errorf("gpt: %w at LBA %d: header CRC %08x, computed %08x", ErrNoGPT, lba, want, got)
	}
	n, es := binary.LittleEndian.Uint32(h[80:]), binary.LittleEndian.Uint32(h[84:])
	if es < entrySize || n == 0 || n*es > 1<<20 {
		return nil, fmt.Errorf("gpt: %w at LBA %d: %d entries of %d bytes", ErrNoGPT, lba, n, es)
	}
	t.entries = make([]byte, n*es)
	if _, err := r.ReadAt(t.entries, t.u64(72)*ss); err != nil {
		return nil, fmt.Errorf("gpt: reading entries: %w", err)
	}
	if got, want := crc32.ChecksumIEEE(t.entries), binary.LittleEndian.Uint32(h[88:]); got != want {
		return nil, fmt.Errorf("gpt: %w at LBA %d: entries CRC %08x, computed %08x", ErrNoGPT, lba, want, got)
	}
	for i := range int(n) {
		e := t.entries[i*int(es):]
		typ := guid(e[0:16])
		if typ == "00000000-0000-0000-0000-000000000000" {
			continue
		}
		t.Partitions = append(t.Partitions, Partition{
			Index: i + 1, Type: typ, GUID: guid(e[16:32]),
			First: int64(binary.LittleEndian.Uint64(e[32:])), Last: int64(binary.LittleEndian.Uint64(e[40:])),
			Name: name(e[56:128]),
		})
	}
	return t, nil
}

// Grow moves the backup GPT to the end of a disk of diskBytes and extends
// the last partition (highest end) to the new last usable LBA. The file
// system inside is left alone: the installed system grows it.
func Grow(f interface {
	io.ReaderAt
	io.WriterAt
}, ss, diskBytes int64) (Partition, error) {
	t, err := Read(f, ss)
	if err != nil {
		return Partition{}, err
	}
	lastLBA := diskBytes/ss - 1
	if lastLBA < t.BackupLBA() {
		return Partition{}, fmt.Errorf("gpt: disk of %d bytes ends before the table's backup at LBA %d", diskBytes, t.BackupLBA())
	}
	if len(t.Partitions) == 0 {
		return Partition{}, fmt.Errorf("gpt: no partition to grow")
	}
	entSectors := (int64(len(t.entries)) + ss - 1) / ss
	lastUsable := lastLBA - entSectors - 1
	es := int(binary.LittleEndian.Uint32(t.header[84:]))
	last := t.Partitions[0]
	for _, p := range t.Partitions {
		if p.Last > last.Last {
			last = p
		}
	}
	if lastUsable > last.Last {
		last.Last = lastUsable
		binary.LittleEndian.PutUint64(t.entries[(last.Index-1)*es+40:], uint64(lastUsable))
	}
	binary.LittleEndian.PutUint64(t.header[32:], uint64(lastLBA))
	binary.LittleEndian.PutUint64(t.header[48:], uint64(lastUsable))
	if err := t.write(f, lastLBA, lastLBA-entSectors); err != nil {
		return Partition{}, err
	}
	return last, protectiveMBR(f, ss, lastLBA)
}

// write writes entries and both headers; the primary is at LBA 1 with its
// entries where they were, the backup at backupLBA with entries at backupEntries.
func (t *Table) write(w io.WriterAt, backupLBA, backupEntries int64) error {
	ss := t.SectorSize
	binary.LittleEndian.PutUint32(t.header[88:], crc32.ChecksumIEEE(t.entries))
	prim := append([]byte(nil), t.header...)
	binary.LittleEndian.PutUint64(prim[24:], 1)
	binary.LittleEndian.PutUint64(prim[32:], uint64(backupLBA))
	binary.LittleEndian.PutUint32(prim[16:], headerCRC(prim))
	back := append([]byte(nil), t.header...)
	binary.LittleEndian.PutUint64(back[24:], uint64(backupLBA))
	binary.LittleEndian.PutUint64(back[32:], 1)
	binary.LittleEndian.PutUint64(back[72:], uint64(backupEntries))
	binary.LittleEndian.PutUint32(back[16:], headerCRC(back))
	for _, wr := range []struct {
		b   []byte
		lba int64
	}{{t.entries, t.u64(72)}, {t.entries, backupEntries}, {pad(prim, ss), 1}, {pad(back, ss), backupLBA}} {
		if _, err := w.WriteAt(wr.b, wr.lba*ss); err != nil {
			return fmt.Errorf("gpt: writing at LBA %d: %w", wr.lba, err)
		}
	}
	return nil
}

// protectiveMBR sets the 0xEE entry's size to cover the disk, as the spec
// asks (capped at 2^32-1 sectors).
func protectiveMBR(f interface {
	io.ReaderAt
	io.WriterAt
}, ss, lastLBA int64) error {
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return fmt.Errorf("gpt: reading the MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa || mbr[446+4] != 0xee {
		return nil // a hybrid or missing MBR: not ours to fix
	}
	binary.LittleEndian.PutUint32(mbr[446+12:], uint32(min(lastLBA, 0xffffffff)))
	_, err := f.WriteAt(mbr[446:462], 446)
	return err
}

// Create writes a protective MBR and a fresh GPT with parts on a disk of
// diskBytes (the partitions' Index is ignored: they take 1, 2, ... in order).
func Create(w io.WriterAt, ss, diskBytes int64, diskGUID [16]byte, parts []Partition) error {
	lastLBA := diskBytes/ss - 1
	entSectors := int64(numEntries*entrySize) / ss
	t := &Table{SectorSize: ss, header: make([]byte, headerSize), entries: make([]byte, numEntries*entrySize)}
	h := t.header
	copy(h, signature)
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], headerSize)
	binary.LittleEndian.PutUint64(h[40:], uint64(2+entSectors))
	binary.LittleEndian.PutUint64(h[48:], uint64(lastLBA-entSectors-1))
	copy(h[56:72], diskGUID[:])
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], numEntries)
	binary.LittleEndian.PutUint32(h[84:], entrySize)
	for i, p := range parts {
		e := t.entries[i*entrySize:]
		typ, err := parseGUID(p.Type)
		if err != nil {
			return err
		}
		id, err := parseGUID(p.GUID)
		if err != nil {
			return err
		}
		copy(e[0:], typ)
		copy(e[16:], id)
		binary.LittleEndian.PutUint64(e[32:], uint64(p.First))
		binary.LittleEndian.PutUint64(e[40:], uint64(p.Last))
		for j, u := range utf16.Encode([]rune(p.Name)) {
			if j < 36 {
				binary.LittleEndian.PutUint16(e[56+2*j:], u)
			}
		}
	}
	mbr := make([]byte, 512)
	mbr[446+1], mbr[446+2] = 0, 2 // CHS of LBA 1
	mbr[446+4] = 0xee
	mbr[446+5], mbr[446+6], mbr[446+7] = 0xff, 0xff, 0xff
	binary.LittleEndian.PutUint32(mbr[446+8:], 1)
	binary.LittleEndian.PutUint32(mbr[446+12:], uint32(min(lastLBA, 0xffffffff)))
	mbr[510], mbr[511] = 0x55, 0xaa
	if _, err := w.WriteAt(mbr, 0); err != nil {
		return err
	}
	return t.write(w, lastLBA, lastLBA-entSectors)
}

func headerCRC(h []byte) uint32 {
	c := append([]byte(nil), h...)
	binary.LittleEndian.PutUint32(c[16:], 0)
	return crc32.ChecksumIEEE(c)
}

func pad(b []byte, n int64) []byte {
	out := make([]byte, n)
	copy(out, b)
	return out
}

// guid formats a mixed-endian on-disk GUID.
func guid(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

func parseGUID(s string) ([]byte, error) {
	var a uint32
	var b, c uint16
	var d, e []byte
	if _, err := fmt.Sscanf(s, "%08x-%04x-%04x-%4x-%12x", &a, &b, &c, &d, &e); err != nil || len(d) != 2 || len(e) != 6 {
		return nil, fmt.Errorf("gpt: bad GUID %q", s)
	}
	out := make([]byte, 16)
	binary.LittleEndian.PutUint32(out, a)
	binary.LittleEndian.PutUint16(out[4:], b)
	binary.LittleEndian.PutUint16(out[6:], c)
	copy(out[8:], d)
	copy(out[10:], e)
	return out, nil
}

func name(b []byte) string {
	u := make([]uint16, 0, 36)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// ext4Magic is at byte 56 of the superblock, itself 1024 bytes in.
var ext4Magic = []byte{0x53, 0xef}

// FindRoot returns the partition holding the installed root: the one of
// type Linux root (x86-64), else the last (highest start) whose first
// bytes hold an ext2/3/4 superblock.
func FindRoot(r io.ReaderAt, t *Table) (Partition, error) {
	for _, p := range t.Partitions {
		if p.Type == TypeLinuxRootX86_64 {
			return p, nil
		}
	}
	var found *Partition
	for i, p := range t.Partitions {
		m := make([]byte, 2)
		if _, err := r.ReadAt(m, p.First*t.SectorSize+1024+56); err != nil || !bytes.Equal(m, ext4Magic) {
			continue
		}
		if found == nil || p.First > found.First {
			found = &t.Partitions[i]
		}
	}
	if found == nil {
		return Partition{}, fmt.Errorf("gpt: no root partition: none of type Linux root x86-64 and none of %d partitions holds ext4", len(t.Partitions))
	}
	return *found, nil
}
