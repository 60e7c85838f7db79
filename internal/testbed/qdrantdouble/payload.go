package qdrantdouble

import (
	"strconv"
	"strings"

	"github.com/qdrant/go-client/qdrant"
)

// fromValue turns a protobuf Value into the JSON-like value Qdrant stores: nil, bool, int64,
// float64, string, []any, map[string]any. Integer and double stay distinct (serde_json keeps
// 3 and 3.0 apart), so they come back as they were sent.
func fromValue(v *qdrant.Value) any {
	switch k := v.GetKind().(type) {
	case *qdrant.Value_BoolValue:
		return k.BoolValue
	case *qdrant.Value_IntegerValue:
		return k.IntegerValue
	case *qdrant.Value_DoubleValue:
		return k.DoubleValue
	case *qdrant.Value_StringValue:
		return k.StringValue
	case *qdrant.Value_ListValue:
		out := make([]any, 0, len(k.ListValue.GetValues()))
		for _, e := range k.ListValue.GetValues() {
			out = append(out, fromValue(e))
		}
		return out
	case *qdrant.Value_StructValue:
		return fromValueMap(k.StructValue.GetFields())
	default: // NullValue, or no kind at all
		return nil
	}
}

func fromValueMap(m map[string]*qdrant.Value) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = fromValue(v)
	}
	return out
}

func toValue(v any) *qdrant.Value {
	switch x := v.(type) {
	case bool:
		return qdrant.NewValueBool(x)
	case int64:
		return qdrant.NewValueInt(x)
	case float64:
		return qdrant.NewValueDouble(x)
	case string:
		return qdrant.NewValueString(x)
	case []any:
		vals := make([]*qdrant.Value, 0, len(x))
		for _, e := range x {
			vals = append(vals, toValue(e))
		}
		return &qdrant.Value{Kind: &qdrant.Value_ListValue{ListValue: &qdrant.ListValue{Values: vals}}}
	case map[string]any:
		return &qdrant.Value{Kind: &qdrant.Value_StructValue{StructValue: &qdrant.Struct{Fields: toValueMap(x)}}}
	default:
		return qdrant.NewValueNull()
	}
}

func toValueMap(m map[string]any) map[string]*qdrant.Value {
	out := make(map[string]*qdrant.Value, len(m))
	for k, v := range m {
		out[k] = toValue(v)
	}
	return out
}

// deepCopy copies a JSON-like value so stored payloads never alias request data.
func deepCopy(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	default:
		return v
	}
}

// --- JSON paths -----------------------------------------------------------------------------------

// pathItem is one step of a payload key as Qdrant reads it (lib/segment/src/json_path): a field
// name (`a`, or `"a.b"` quoted), `[]` for every element of an array, `[n]` for one element.
type pathItem struct {
	key      string
	wildcard bool
	index    int // ≥ 0 when an index step
}

func parsePath(path string) []pathItem {
	var items []pathItem
	for len(path) > 0 {
		switch {
		case path[0] == '.':
			path = path[1:]
		case path[0] == '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return append(items, pathItem{key: path, index: -1})
			}
			inner := path[1:end]
			path = path[end+1:]
			if inner == "" {
				items = append(items, pathItem{wildcard: true, index: -1})
			} else if n, err := strconv.Atoi(inner); err == nil && n >= 0 {
				items = append(items, pathItem{index: n})
			} else {
				items = append(items, pathItem{key: inner, index: -1})
			}
		case path[0] == '"':
			end := strings.IndexByte(path[1:], '"')
			if end < 0 {
				return append(items, pathItem{key: path[1:], index: -1})
			}
			items = append(items, pathItem{key: path[1 : end+1], index: -1})
			path = path[end+2:]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			items = append(items, pathItem{key: path[:end], index: -1})
			path = path[end:]
		}
	}
	return items
}

// valuesAt returns the values a payload key resolves to, like the value extraction Qdrant's filters
// use (mirrored in qdrant-client's local mode, qdrant_client/local/payload_value_extractor.py).
// With flat, a final array contributes its elements rather than itself. ok is false when the key
// resolves to nothing.
func valuesAt(payload map[string]any, key string, flat bool) (vals []any, ok bool) {
	items := parsePath(key)
	var walk func(data any, rest []pathItem)
	walk = func(data any, rest []pathItem) {
		if len(rest) == 0 {
			return
		}
		it, rest := rest[0], rest[1:]
		last := len(rest) == 0
		switch {
		case it.wildcard:
			arr, isArr := data.([]any)
			if !isArr {
				return
			}
			if last {
				vals = append(vals, arr...)
				return
			}
			for _, e := range arr {
				walk(e, rest)
			}
		case it.index >= 0:
			arr, isArr := data.([]any)
			if !isArr || it.index >= len(arr) {
				return
			}
			if last {
				vals = append(vals, arr[it.index])
				return
			}
			walk(arr[it.index], rest)
		default:
			obj, isObj := data.(map[string]any)
			if !isObj {
				return
			}
			v, found := obj[it.key]
			if !found {
				return
			}
			if !last {
				walk(v, rest)
				return
			}
			if arr, isArr := v.([]any); isArr && flat {
				vals = append(vals, arr...)
			} else {
				vals = append(vals, v)
			}
		}
	}
	walk(payload, items)
	return vals, len(vals) > 0
}

// isEmpty: the key resolves to nothing, or only to nulls and empty arrays (IsEmpty condition).
func isEmpty(payload map[string]any, key string) bool {
	vals, _ := valuesAt(payload, key, false)
	for _, v := range vals {
		if v == nil {
			continue
		}
		if arr, ok := v.([]any); ok && len(arr) == 0 {
			continue
		}
		return false
	}
	return true
}

// isNull: some value the key resolves to is null, or an array holding a null (IsNull condition).
func isNull(payload map[string]any, key string) bool {
	vals, _ := valuesAt(payload, key, false)
	for _, v := range vals {
		if v == nil {
			return true
		}
		if arr, ok := v.([]any); ok {
			for _, e := range arr {
				if e == nil {
					return true
				}
			}
		}
	}
	return false
}

// objectAt returns the object under a key path, creating missing objects on the way when create
// is set (SetPayload with `key`). Only plain field steps are supported there.
func objectAt(payload map[string]any, key string, create bool) (map[string]any, bool) {
	cur := payload
	for _, it := range parsePath(key) {
		if it.wildcard || it.index >= 0 {
			return nil, false
		}
		next, ok := cur[it.key].(map[string]any)
		if !ok {
			if !create {
				return nil, false
			}
			next = map[string]any{}
			cur[it.key] = next
		}
		cur = next
	}
	return cur, true
}

// deleteAt removes a key path from the payload (DeletePayload): `a`, `a.b`, `a[].b`, `a[0].b`.
func deleteAt(data any, items []pathItem) {
	if len(items) == 0 {
		return
	}
	it, rest := items[0], items[1:]
	switch {
	case it.wildcard:
		if arr, ok := data.([]any); ok {
			for _, e := range arr {
				deleteAt(e, rest)
			}
		}
	case it.index >= 0:
		if arr, ok := data.([]any); ok && it.index < len(arr) {
			if len(rest) == 0 {
				return // removing array elements is not something DeletePayload does
			}
			deleteAt(arr[it.index], rest)
		}
	default:
		if obj, ok := data.(map[string]any); ok {
			if len(rest) == 0 {
				delete(obj, it.key)
				return
			}
			deleteAt(obj[it.key], rest)
		}
	}
}

// selectPayload applies a WithPayloadSelector. def is the answer when the selector is absent:
// false for Get/Search/Query, true for Scroll (lib/collection/src/collection/point_ops.rs,
// ScrollRequestInternal::default_with_payload). Include/exclude act on top-level keys and on
// dotted paths to nested objects.
func selectPayload(payload map[string]any, sel *qdrant.WithPayloadSelector, def bool) map[string]*qdrant.Value {
	switch s := sel.GetSelectorOptions().(type) {
	case *qdrant.WithPayloadSelector_Enable:
		if !s.Enable {
			return nil
		}
	case *qdrant.WithPayloadSelector_Include:
		out := map[string]any{}
		for _, f := range s.Include.GetFields() {
			copyPath(out, payload, parsePath(f))
		}
		return toValueMap(out)
	case *qdrant.WithPayloadSelector_Exclude:
		cp := deepCopy(payload).(map[string]any)
		for _, f := range s.Exclude.GetFields() {
			deleteAt(cp, parsePath(f))
		}
		return toValueMap(cp)
	default:
		if !def {
			return nil
		}
	}
	return toValueMap(payload)
}

// copyPath copies the value at a plain field path from src into dst, creating parent objects.
func copyPath(dst, src map[string]any, items []pathItem) {
	if len(items) == 0 {
		return
	}
	it := items[0]
	if it.wildcard || it.index >= 0 {
		return
	}
	v, ok := src[it.key]
	if !ok {
		return
	}
	if len(items) == 1 {
		dst[it.key] = deepCopy(v)
		return
	}
	child, ok := v.(map[string]any)
	if !ok {
		return
	}
	d, ok := dst[it.key].(map[string]any)
	if !ok {
		d = map[string]any{}
		dst[it.key] = d
	}
	copyPath(d, child, items[1:])
}

// wantVectors reads a WithVectorsSelector; absent means no vectors everywhere.
func wantVectors(sel *qdrant.WithVectorsSelector) (bool, error) {
	switch s := sel.GetSelectorOptions().(type) {
	case *qdrant.WithVectorsSelector_Enable:
		return s.Enable, nil
	case *qdrant.WithVectorsSelector_Include:
		for _, n := range s.Include.GetNames() {
			if n != "" {
				return false, errBadInput("Vector name error: vector '%s' does not exist in collection", n)
			}
		}
		return len(s.Include.GetNames()) > 0, nil
	default:
		return false, nil
	}
}

// vectorsOutput renders a stored vector. Since 1.17 the server fills only the typed `dense`
// variant and leaves the deprecated flat `data` empty (plan in qdrant/qdrant#7183: clients got
// readers for both in 1.16, the server switched in 1.17 via #8114, the field goes in 1.18). The
// go-client's VectorOutput.GetDenseVector reads either; code reading GetData() directly breaks on a
// real 1.17 server, and here too.
func vectorsOutput(v []float32) *qdrant.VectorsOutput {
	data := append([]float32(nil), v...)
	return &qdrant.VectorsOutput{VectorsOptions: &qdrant.VectorsOutput_Vector{Vector: &qdrant.VectorOutput{
		Vector: &qdrant.VectorOutput_Dense{Dense: &qdrant.DenseVector{Data: data}},
	}}}
}
