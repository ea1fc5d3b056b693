// Package gpt writes and reads GUID partition tables (UEFI spec 2.10,
// section 5.3): a protective MBR, the primary header at LBA 1 with its
// entry array from LBA 2, and the backup entries and header at the end of
// the disk, with their CRC32s. 512-byte sectors, 128 entries of 128 bytes.
package gpt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// Geometry of the tables this package writes.
const (
	SectorSize = 512
	NumEntries = 128
	EntrySize  = 128
	// EntrySectors is the size of one entry array in sectors (32).
	EntrySectors = NumEntries * EntrySize / SectorSize
	// FirstUsableLBA is the first sector after the MBR, header and entries.
	FirstUsableLBA = 2 + EntrySectors
	// BootCodeSize is how much of the MBR a BIOS boot loader may fill
	// (gptmbr.bin): the rest holds the disk signature and partition table.
	BootCodeSize = 440
)

// Partition type GUIDs (Discoverable Partitions Specification, UEFI).
var (
	TypeESP          = MustParseGUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
	TypeLinuxRootX64 = MustParseGUID("4f68bce3-e8cd-4db1-96e7-fbcaf984b709")
	TypeLinuxData    = MustParseGUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
	TypeBIOSBoot     = MustParseGUID("21686148-6449-6e6f-744e-656564454649")
)

// Partition attribute bits (UEFI 2.10 table 5.9).
const (
	AttrRequired       = 1 << 0
	AttrNoBlockIO      = 1 << 1
	AttrLegacyBIOSBoot = 1 << 2 // gptmbr.bin boots the partition with this bit
)

// ErrCorrupt: a table whose signature, CRC or layout is wrong.
var ErrCorrupt = errors.New("gpt: corrupt table")

// GUID is a GUID in its on-disk byte order (the first three fields
// little-endian, the rest as written).
type GUID [16]byte

// ParseGUID reads the textual form "c12a7328-f81f-11d2-ba4b-00a0c93ec93b".
func ParseGUID(s string) (GUID, error) {
	var g GUID
	h := strings.ReplaceAll(s, "-", "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 16 || len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("gpt: %q is not a GUID", s)
	}
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:])
	return g, nil
}

// MustParseGUID is ParseGUID for constants.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

func (g GUID) String() string {
	b := []byte{g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6]}
	b = append(b, g[8:]...)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// DerivedGUID is a version-4-shaped GUID from a hash of seed: a disk built
// twice from the same inputs gets the same GUIDs.
func DerivedGUID(seed string) GUID {
	h := sha256.Sum256([]byte("osim-gpt:" + seed))
	var b [16]byte
	copy(b[:], h[:16])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	g, _ := ParseGUID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
	return g
}

// Partition is one entry. LBAs are inclusive.
type Partition struct {
	Type       GUID
	GUID       GUID
	FirstLBA   uint64
	LastLBA    uint64
	Attributes uint64
	Name       string // at most 36 UTF-16 code units
}

// Table is a whole disk's partitioning.
type Table struct {
	DiskGUID   GUID
	Sectors    uint64 // size of the disk in sectors
	Partitions []Partition
	// BootCode fills the MBR's first bytes (at most BootCodeSize), e.g.
	// syslinux's gptmbr.bin; nil leaves them zero.
	BootCode []byte
}

// LastUsableLBA is the last sector before the backup entries.
func (t Table) LastUsableLBA() uint64 { return t.Sectors - 2 - EntrySectors }

// Validate checks the table fits its disk and its partitions do not overlap.
func (t Table) Validate() error {
	if t.Sectors < 2*FirstUsableLBA+1 {
		return fmt.Errorf("gpt: a disk of %d sectors is too small for a GPT", t.Sectors)
	}
	if len(t.Partitions) > NumEntries {
		return fmt.Errorf("gpt: %d partitions, at most %d", len(t.Partitions), NumEntries)
	}
	if len(t.BootCode) > BootCodeSize {
		return fmt.Errorf("gpt: boot code of %d bytes, at most %d", len(t.BootCode), BootCodeSize)
	}
	for i, p := range t.Partitions {
		if p.FirstLBA < FirstUsableLBA || p.LastLBA > t.LastUsableLBA() || p.FirstLBA > p.LastLBA {
			return fmt.Errorf("gpt: partition %d (%q) spans LBA %d-%d, outside %d-%d", i+1, p.Name, p.FirstLBA, p.LastLBA, FirstUsableLBA, t.LastUsableLBA())
		}
		if p.Type == (GUID{}) {
			return fmt.Errorf("gpt: partition %d (%q) has no type", i+1, p.Name)
		}
		if len(utf16.Encode([]rune(p.Name))) > 36 {
			return fmt.Errorf("gpt: partition %d name %q is longer than 36 UTF-16 units", i+1, p.Name)
		}
		for j, q := range t.Partitions[:i] {
			if p.FirstLBA <= q.LastLBA && q.FirstLBA <= p.LastLBA {
				return fmt.Errorf("gpt: partitions %d and %d overlap", j+1, i+1)
			}
		}
	}
	return nil
}

// Write writes the protective MBR, both headers and both entry arrays to
// w, a disk of t.Sectors sectors. It writes nothing else.
func (t Table) Write(w io.WriterAt) error {
	if err := t.Validate(); err != nil {
		return err
	}
	entries := t.entries()
	last := t.Sectors - 1
	primary := t.header(1, last, 2, entries)
	backup := t.header(last, 1, last-EntrySectors, entries)
	writes := []struct {
		lba  uint64
		data []byte
	}{{0, t.mbr()}, {1, primary}, {2, entries}, {last - EntrySectors, entries}, {last, backup}}
	for _, x := range writes {
		if _, err := w.WriteAt(x.data, int64(x.lba)*SectorSize); err != nil {
			return fmt.Errorf("gpt: writing LBA %d: %w", x.lba, err)
		}
	}
	return nil
}

// mbr is the protective MBR: one partition of type 0xEE over the disk.
func (t Table) mbr() []byte {
	b := make([]byte, SectorSize)
	copy(b, t.BootCode)
	e := b[446:462]
	e[0] = 0x00                             // not active
	e[1], e[2], e[3] = 0x00, 0x02, 0x00     // CHS of LBA 1
	e[4] = 0xEE                             // GPT protective
	e[5], e[6], e[7] = 0xFF, 0xFF, 0xFF     // CHS beyond reach
	binary.LittleEndian.PutUint32(e[8:], 1) // starting LBA
	size := min(t.Sectors-1, 0xFFFFFFFF)    // the rest of the disk, capped
	binary.LittleEndian.PutUint32(e[12:], uint32(size))
	b[510], b[511] = 0x55, 0xAA
	return b
}

func (t Table) entries() []byte {
	b := make([]byte, NumEntries*EntrySize)
	for i, p := range t.Partitions {
		e := b[i*EntrySize : (i+1)*EntrySize]
		copy(e[0:16], p.Type[:])
		copy(e[16:32], p.GUID[:])
		binary.LittleEndian.PutUint64(e[32:], p.FirstLBA)
		binary.LittleEndian.PutUint64(e[40:], p.LastLBA)
		binary.LittleEndian.PutUint64(e[48:], p.Attributes)
		for j, u := range utf16.Encode([]rune(p.Name)) {
			binary.LittleEndian.PutUint16(e[56+2*j:], u)
		}
	}
	return b
}

func (t Table) header(my, alternate, entriesLBA uint64, entries []byte) []byte {
	b := make([]byte, SectorSize)
	copy(b, "EFI PART")
	binary.LittleEndian.PutUint32(b[8:], 0x00010000) // revision 1.0
	binary.LittleEndian.PutUint32(b[12:], 92)        // header size
	binary.LittleEndian.PutUint64(b[24:], my)
	binary.LittleEndian.PutUint64(b[32:], alternate)
	binary.LittleEndian.PutUint64(b[40:], FirstUsableLBA)
	binary.LittleEndian.PutUint64(b[48:], t.LastUsableLBA())
	copy(b[56:72], t.DiskGUID[:])
	binary.LittleEndian.PutUint64(b[72:], entriesLBA)
	binary.LittleEndian.PutUint32(b[80:], NumEntries)
	binary.LittleEndian.PutUint32(b[84:], EntrySize)
	binary.LittleEndian.PutUint32(b[88:], crc32.ChecksumIEEE(entries))
	binary.LittleEndian.PutUint32(b[16:], crc32.ChecksumIEEE(b[:92]))
	return b
}

// Read parses the table of a disk of size bytes, checking the protective
// MBR, both headers, both entry arrays and their CRCs, and that the two
// copies agree.
func Read(r io.ReaderAt, size int64) (Table, error) {
	t := Table{Sectors: uint64(size) / SectorSize}
	if t.Sectors < 2*FirstUsableLBA+1 {
		return t, fmt.Errorf("%w: %d bytes is too small for a GPT", ErrCorrupt, size)
	}
	mbr := make([]byte, SectorSize)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return t, fmt.Errorf("gpt: reading the MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA || mbr[450] != 0xEE {
		return t, fmt.Errorf("%w: no protective MBR", ErrCorrupt)
	}
	t.BootCode = bytes.Clone(mbr[:BootCodeSize])
	last := t.Sectors - 1
	primary, err := readHeader(r, 1, last)
	if err != nil {
		return t, fmt.Errorf("primary header: %w", err)
	}
	backup, err := readHeader(r, last, 1)
	if err != nil {
		return t, fmt.Errorf("backup header: %w", err)
	}
	if !bytes.Equal(primary.entries, backup.entries) || primary.diskGUID != backup.diskGUID {
		return t, fmt.Errorf("%w: primary and backup tables differ", ErrCorrupt)
	}
	t.DiskGUID = primary.diskGUID
	for i := range NumEntries {
		e := primary.entries[i*EntrySize : (i+1)*EntrySize]
		var p Partition
		copy(p.Type[:], e[0:16])
		if p.Type == (GUID{}) {
			continue
		}
		copy(p.GUID[:], e[16:32])
		p.FirstLBA = binary.LittleEndian.Uint64(e[32:])
		p.LastLBA = binary.LittleEndian.Uint64(e[40:])
		p.Attributes = binary.LittleEndian.Uint64(e[48:])
		var u []uint16
		for j := 56; j < EntrySize; j += 2 {
			c := binary.LittleEndian.Uint16(e[j:])
			if c == 0 {
				break
			}
			u = append(u, c)
		}
		p.Name = string(utf16.Decode(u))
		t.Partitions = append(t.Partitions, p)
	}
	return t, nil
}

type header struct {
	diskGUID GUID
	entries  []byte
}

func readHeader(r io.ReaderAt, lba, alternate uint64) (header, error) {
	var h header
	b := make([]byte, SectorSize)
	if _, err := r.ReadAt(b, int64(lba)*SectorSize); err != nil {
		return h, fmt.Errorf("gpt: reading LBA %d: %w", lba, err)
	}
	if string(b[:8]) != "EFI PART" {
		return h, fmt.Errorf("%w: no signature at LBA %d", ErrCorrupt, lba)
	}
	hsize := binary.LittleEndian.Uint32(b[12:])
	if hsize < 92 || hsize > SectorSize {
		return h, fmt.Errorf("%w: header size %d at LBA %d", ErrCorrupt, hsize, lba)
	}
	want := binary.LittleEndian.Uint32(b[16:])
	c := bytes.Clone(b[:hsize])
	binary.LittleEndian.PutUint32(c[16:], 0)
	if crc32.ChecksumIEEE(c) != want {
		return h, fmt.Errorf("%w: header CRC at LBA %d", ErrCorrupt, lba)
	}
	if my, alt := binary.LittleEndian.Uint64(b[24:]), binary.LittleEndian.Uint64(b[32:]); my != lba || alt != alternate {
		return h, fmt.Errorf("%w: header at LBA %d says it is at %d with its copy at %d", ErrCorrupt, lba, my, alt)
	}
	n, esize := binary.LittleEndian.Uint32(b[80:]), binary.LittleEndian.Uint32(b[84:])
	if esize != EntrySize || n != NumEntries {
		return h, fmt.Errorf("%w: %d entries of %d bytes (this reader takes %d of %d)", ErrCorrupt, n, esize, NumEntries, EntrySize)
	}
	copy(h.diskGUID[:], b[56:72])
	h.entries = make([]byte, n*esize)
	if _, err := r.ReadAt(h.entries, int64(binary.LittleEndian.Uint64(b[72:]))*SectorSize); err != nil {
		return h, fmt.Errorf("gpt: reading the entries of the header at LBA %d: %w", lba, err)
	}
	if crc32.ChecksumIEEE(h.entries) != binary.LittleEndian.Uint32(b[88:]) {
		return h, fmt.Errorf("%w: entry array CRC of the header at LBA %d", ErrCorrupt, lba)
	}
	return h, nil
}
