package vector

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The embedded store's on-disk encoding: little-endian, length-prefixed fields, vectors as raw
// float32 (gob would spend up to 9 bytes per float; a 768-d vector is 3 KiB raw).

var errCorrupt = errors.New("corrupt record")

type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) u64(v uint64)     { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }

func (e *encoder) strs(ss []string) {
	e.uvarint(uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

func (e *encoder) chunk(c *Chunk) {
	e.str(c.DocumentID)
	e.str(c.Name)
	e.varint(int64(c.ChunkIndex))
	e.str(c.Text)
	e.strs(c.Tags)
	e.varint(int64(c.Page))
	e.str(c.Section)
	e.uvarint(uint64(len(c.Vector)))
	for _, x := range c.Vector {
		e.b = binary.LittleEndian.AppendUint32(e.b, math.Float32bits(x))
	}
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) byte1() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// count reads a length and checks it could fit in what is left (each element takes at least
// minSize bytes), so a corrupt length cannot make us allocate gigabytes.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/max(minSize, 1)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	n := d.count(1)
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) strs() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	return out
}

func (d *decoder) chunk() Chunk {
	var c Chunk
	c.DocumentID = d.str()
	c.Name = d.str()
	c.ChunkIndex = int(d.varint())
	c.Text = d.str()
	c.Tags = d.strs()
	c.Page = int(d.varint())
	c.Section = d.str()
	n := d.count(4)
	c.Vector = make([]float32, n)
	for i := range c.Vector {
		c.Vector[i] = math.Float32frombits(binary.LittleEndian.Uint32(d.b[4*i:]))
	}
	d.b = d.b[4*n:]
	return c
}

// A WAL operation. Every op carries a sequence number; the snapshot records the last one it
// contains, so replaying a log that a crash left untruncated after a compaction skips what the
// snapshot already has.
type opKind byte

const (
	opUpsert opKind = iota + 1
	opDelete
	opSetTags
)

type op struct {
	seq    uint64
	kind   opKind
	chunks []Chunk  // upsert
	doc    string   // delete, setTags
	keep   int      // delete
	tags   []string // setTags
}

func (o *op) encode() []byte {
	e := &encoder{}
	e.u64(o.seq)
	e.b = append(e.b, byte(o.kind))
	switch o.kind {
	case opUpsert:
		e.uvarint(uint64(len(o.chunks)))
		for i := range o.chunks {
			e.chunk(&o.chunks[i])
		}
	case opDelete:
		e.str(o.doc)
		e.varint(int64(o.keep))
	case opSetTags:
		e.str(o.doc)
		e.strs(o.tags)
	}
	return e.b
}

func decodeOp(b []byte) (op, error) {
	d := &decoder{b: b}
	o := op{seq: d.u64(), kind: opKind(d.byte1())}
	switch o.kind {
	case opUpsert:
		n := d.count(1)
		o.chunks = make([]Chunk, 0, n)
		for range n {
			o.chunks = append(o.chunks, d.chunk())
		}
	case opDelete:
		o.doc = d.str()
		o.keep = int(d.varint())
	case opSetTags:
		o.doc = d.str()
		o.tags = d.strs()
	default:
		return op{}, fmt.Errorf("%w: unknown op %d", errCorrupt, o.kind)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	return o, d.err
}
