package buswal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
)

// ErrCorrupt means a segment or the segment sequence is damaged somewhere
// other than a torn tail: the log refuses to open rather than skip records.
var ErrCorrupt = errors.New("write-ahead log corrupt")

// Frame layout (little-endian): 4 bytes payload length, 4 bytes its bitwise
// complement (a damaged length is told from a write cut short), 4 bytes
// CRC-32C of the payload, then the payload (one protobuf busv1.Record).
const frameHeader = 12

// maxFrame bounds one record's encoding; a longer length field is corruption.
const maxFrame = 16 << 20

// A group write is cut at groupBytes; one publish may not exceed maxPublish.
const (
	groupBytes = 4 << 20
	maxPublish = 16 << 20
)

const segExt = ".wal"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends the frame of rec to buf.
func appendFrame(buf []byte, rec *busv1.Record) ([]byte, error) {
	start := len(buf)
	buf = append(buf, make([]byte, frameHeader)...)
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, rec)
	if err != nil {
		return buf[:start], fmt.Errorf("encode bus record: %w", err)
	}
	payload := buf[start+frameHeader:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], ^uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+8:], crc32.Checksum(payload, castagnoli))
	return buf, nil
}

// segName is the file name of the segment whose first record has offset first.
func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segExt) }

// segment is one file of the log: records [first, first+count).
type segment struct {
	path  string
	first uint64
	count uint64
	size  int64
}

// listSegments returns the segments in dir in offset order.
func listSegments(dir string) ([]segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read log dir: %w", err)
	}
	var segs []segment
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, segExt) {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, segExt), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: unexpected segment name %q", ErrCorrupt, name)
		}
		segs = append(segs, segment{path: filepath.Join(dir, name), first: first})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	return segs, nil
}

// scanResult is what reading one segment found.
type scanResult struct {
	count uint64
	// valid is the byte length of the intact frames.
	valid int64
	// torn is set when bytes after valid form an incomplete or damaged
	// final frame (a write cut short by a crash).
	torn bool
}

// scanSegment reads every frame of the segment at path, calling fn (if not
// nil) with the offset and decoded record of each frame at or after from. A
// damaged frame that is not the file's last is ErrCorrupt; a damaged or
// incomplete last frame is reported as torn when last is true, else as
// ErrCorrupt.
func scanSegment(path string, first, from uint64, last bool, fn func(off uint64, rec *busv1.Record) error) (scanResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return scanResult{}, fmt.Errorf("read segment: %w", err)
	}
	var res scanResult
	pos := 0
	for pos < len(data) {
		rest := len(data) - pos
		bad, torn := "", false
		var n int
		if rest < frameHeader {
			bad, torn = "incomplete frame header", true
		} else {
			n = int(binary.LittleEndian.Uint32(data[pos:]))
			switch {
			case uint32(n) != ^binary.LittleEndian.Uint32(data[pos+4:]) || n > maxFrame:
				bad = "damaged frame length"
			case n > rest-frameHeader:
				bad, torn = "frame runs past the end of the file", true
			case crc32.Checksum(data[pos+frameHeader:pos+frameHeader+n], castagnoli) != binary.LittleEndian.Uint32(data[pos+8:]):
				// A bad checksum on the last frame (only zeros after it) is
				// a write whose last pages never made it.
				bad, torn = "checksum mismatch", allZero(data[pos+frameHeader+n:])
			}
		}
		if bad != "" {
			// Only the last segment can have a torn tail; zeros after the
			// last good frame are one too (size updated, data not written).
			if last && (torn || allZero(data[pos:])) {
				res.torn = true
				return res, nil
			}
			return res, fmt.Errorf("%w: %s at byte %d (record %d) of %s", ErrCorrupt, bad, pos, first+res.count, filepath.Base(path))
		}
		off := first + res.count
		if fn != nil && off >= from {
			rec := new(busv1.Record)
			if err := proto.Unmarshal(data[pos+frameHeader:pos+frameHeader+n], rec); err != nil {
				return res, fmt.Errorf("%w: record %d of %s does not decode: %v", ErrCorrupt, off, filepath.Base(path), err)
			}
			if err := fn(off, rec); err != nil {
				return res, err
			}
		}
		pos += frameHeader + n
		res.count++
		res.valid = int64(pos)
	}
	return res, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// checkpoint file: 8 bytes applied offset, 4 bytes CRC-32C of them.
const ckptName = "applied"

func readCheckpoint(dir string) (uint64, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, ckptName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read checkpoint: %w", err)
	}
	if len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
		// Unreadable: replay everything kept (replay is idempotent).
		return 0, false, nil
	}
	return binary.LittleEndian.Uint64(b), true, nil
}

// writeCheckpoint records applied in f (overwritten in place); sync makes it
// durable (needed before segments it covers are deleted).
func writeCheckpoint(f *os.File, applied uint64, sync bool) error {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:], applied)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	if _, err := f.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync checkpoint: %w", err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
