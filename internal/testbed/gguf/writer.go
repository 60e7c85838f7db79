// Package gguf writes tiny, deterministic GGUF v3 models that a real Ollama server loads and
// runs, so tests can exercise Ollama end to end on machines that cannot download weights.
//
// The models are nonsense by design: their output layer is wired so that generation is a short,
// fixed chain of whole-word tokens ending in EOS (optionally wrapped in <think></think>), and the
// embedding model is close to a bag of words. Tests must assert on structure, never wording.
package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Alignment is the GGUF default tensor data alignment; Ollama and llama.cpp both assume it when
// general.alignment is absent.
const Alignment = 32

// GGUF metadata value types (gguf.h).
const (
	typeUint32  uint32 = 4
	typeInt32   uint32 = 5
	typeFloat32 uint32 = 6
	typeBool    uint32 = 7
	typeString  uint32 = 8
	typeArray   uint32 = 9
)

// TensorType is a ggml tensor element type.
type TensorType uint32

// The tensor types this package writes.
const (
	F32  TensorType = 0
	F16  TensorType = 1
	Q8_0 TensorType = 8
)

// File types (llama_ftype) recorded as general.file_type.
const (
	fileTypeMostlyF16  uint32 = 1
	fileTypeMostlyQ8_0 uint32 = 7
)

type keyValue struct {
	key   string
	value any
}

type tensor struct {
	name  string
	shape []uint64 // ggml order: fastest-varying dimension first
	typ   TensorType
	data  []byte
}

// file collects metadata and tensors in insertion order, which is the order they are written.
type file struct {
	kvs     []keyValue
	tensors []tensor
}

func (f *file) set(key string, value any) { f.kvs = append(f.kvs, keyValue{key, value}) }

// addTensor stores values encoded as typ; shape is in ggml order (row length first).
func (f *file) addTensor(name string, typ TensorType, values []float32, shape ...int) {
	n := 1
	dims := make([]uint64, len(shape))
	for i, d := range shape {
		n *= d
		dims[i] = uint64(d)
	}
	if n != len(values) {
		panic(fmt.Sprintf("gguf: tensor %s: shape %v holds %d values, got %d", name, shape, n, len(values)))
	}
	var data []byte
	switch typ {
	case F32:
		data = make([]byte, 4*n)
		for i, v := range values {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
		}
	case F16:
		data = make([]byte, 2*n)
		for i, v := range values {
			binary.LittleEndian.PutUint16(data[2*i:], float16Bits(v))
		}
	case Q8_0:
		data = quantizeQ8_0(values, shape[0])
	default:
		panic(fmt.Sprintf("gguf: tensor %s: unsupported type %d", name, typ))
	}
	f.tensors = append(f.tensors, tensor{name: name, shape: dims, typ: typ, data: data})
}

// writeTo serialises the file as GGUF v3, little-endian, with 32-byte aligned tensor data.
func (f *file) writeTo(w io.Writer) error {
	bw := bufio.NewWriter(w)
	e := &encoder{w: bw}
	e.raw([]byte("GGUF"))
	e.u32(3)
	e.u64(uint64(len(f.tensors)))
	e.u64(uint64(len(f.kvs)))
	for _, kv := range f.kvs {
		e.str(kv.key)
		e.value(kv.key, kv.value)
	}
	var offset uint64
	for _, t := range f.tensors {
		e.str(t.name)
		e.u32(uint32(len(t.shape)))
		for _, d := range t.shape {
			e.u64(d)
		}
		e.u32(uint32(t.typ))
		e.u64(offset)
		offset = alignUp(offset + uint64(len(t.data)))
	}
	e.pad()
	for _, t := range f.tensors {
		e.raw(t.data)
		e.pad()
	}
	if e.err != nil {
		return e.err
	}
	return bw.Flush()
}

func alignUp(n uint64) uint64 { return (n + Alignment - 1) / Alignment * Alignment }

// encoder writes little-endian GGUF primitives, remembering the first error and the offset.
type encoder struct {
	w   io.Writer
	n   uint64
	err error
}

func (e *encoder) raw(b []byte) {
	if e.err != nil {
		return
	}
	var k int
	k, e.err = e.w.Write(b)
	e.n += uint64(k)
}

func (e *encoder) u32(v uint32) { e.raw(binary.LittleEndian.AppendUint32(nil, v)) }
func (e *encoder) u64(v uint64) { e.raw(binary.LittleEndian.AppendUint64(nil, v)) }

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	e.raw([]byte(s))
}

func (e *encoder) pad() {
	if rem := alignUp(e.n) - e.n; rem > 0 {
		e.raw(make([]byte, rem))
	}
}

func (e *encoder) value(key string, v any) {
	switch v := v.(type) {
	case uint32:
		e.u32(typeUint32)
		e.u32(v)
	case int32:
		e.u32(typeInt32)
		e.u32(uint32(v))
	case float32:
		e.u32(typeFloat32)
		e.u32(math.Float32bits(v))
	case bool:
		e.u32(typeBool)
		if v {
			e.raw([]byte{1})
		} else {
			e.raw([]byte{0})
		}
	case string:
		e.u32(typeString)
		e.str(v)
	case []string:
		e.u32(typeArray)
		e.u32(typeString)
		e.u64(uint64(len(v)))
		for _, s := range v {
			e.str(s)
		}
	case []int32:
		e.u32(typeArray)
		e.u32(typeInt32)
		e.u64(uint64(len(v)))
		for _, x := range v {
			e.u32(uint32(x))
		}
	case []float32:
		e.u32(typeArray)
		e.u32(typeFloat32)
		e.u64(uint64(len(v)))
		for _, x := range v {
			e.u32(math.Float32bits(x))
		}
	default:
		if e.err == nil {
			e.err = fmt.Errorf("gguf: key %s: unsupported value type %T", key, v)
		}
	}
}

// float16Bits converts to IEEE 754 half precision, rounding to nearest even. The weights written
// here stay far from the f16 range limits, but overflow and subnormals are handled anyway.
func float16Bits(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case b&0x7fffffff == 0:
		return sign
	case b>>23&0xff == 0xff: // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - exp)
		half := mant >> shift
		rem := mant & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(exp)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, which is the correct rounding
	}
	if half >= 0x7c00 {
		return sign | 0x7c00
	}
	return sign | uint16(half)
}

// quantizeQ8_0 encodes rows of rowLen values as ggml Q8_0 blocks: per 32 values an f16 scale
// followed by 32 signed bytes.
func quantizeQ8_0(values []float32, rowLen int) []byte {
	const block = 32
	if rowLen%block != 0 {
		panic(fmt.Sprintf("gguf: Q8_0 row length %d is not a multiple of %d", rowLen, block))
	}
	out := make([]byte, 0, len(values)/block*(2+block))
	for i := 0; i < len(values); i += block {
		var amax float32
		for _, v := range values[i : i+block] {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		var inv float32
		if d != 0 {
			inv = 1 / d
		}
		out = binary.LittleEndian.AppendUint16(out, float16Bits(d))
		for _, v := range values[i : i+block] {
			out = append(out, byte(int8(math.Round(float64(v*inv)))))
		}
	}
	return out
}
