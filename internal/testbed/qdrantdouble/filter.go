package qdrantdouble

import (
	"strings"

	"github.com/qdrant/go-client/qdrant"
)

// Filters, evaluated the way Qdrant evaluates them on unindexed payload (the double has no payload
// index, and Qdrant's result does not depend on one for these conditions). The semantics were
// taken from qdrant-client's local mode (qdrant_client/local/payload_filters.py and
// payload_value_extractor.py), the pure-Python mirror Qdrant's authors keep of the server's
// checks (lib/segment/src/payload_storage/query_checker.rs):
//   - must: every condition; should: at least one, if any are given; must_not: none;
//     min_should: at least min_count of its conditions;
//   - a field condition looks at every value the key resolves to (arrays flattened) and matches
//     if any value does; a missing key matches nothing (except is_empty / values_count 0);
//   - match keyword / integer / boolean are type-strict (3.0 is not the integer 3);
//   - match except: some non-null value is outside the list.
// Conditions the double does not model (full-text, geo, datetime) are refused with Unimplemented
// when the filter is compiled, before anything runs.

// target is what a condition is checked against: a point, or one element of a nested array.
type target struct {
	id        pointID
	hasID     bool // false inside a nested filter, where has_id cannot match
	hasVector bool
	payload   map[string]any
}

type predicate func(*target) bool

func matchAll(*target) bool { return true }

func compileFilter(f *qdrant.Filter) (predicate, error) {
	if f == nil {
		return matchAll, nil
	}
	must, err := compileConditions(f.GetMust())
	if err != nil {
		return nil, err
	}
	should, err := compileConditions(f.GetShould())
	if err != nil {
		return nil, err
	}
	mustNot, err := compileConditions(f.GetMustNot())
	if err != nil {
		return nil, err
	}
	var minShould []predicate
	minCount := 0
	if ms := f.GetMinShould(); ms != nil {
		if minShould, err = compileConditions(ms.GetConditions()); err != nil {
			return nil, err
		}
		minCount = int(ms.GetMinCount())
	}
	return func(t *target) bool {
		for _, c := range must {
			if !c(t) {
				return false
			}
		}
		if len(should) > 0 && !anyMatch(should, t) {
			return false
		}
		for _, c := range mustNot {
			if c(t) {
				return false
			}
		}
		if minShould != nil {
			n := 0
			for _, c := range minShould {
				if c(t) {
					n++
				}
			}
			if n < minCount {
				return false
			}
		}
		return true
	}, nil
}

func anyMatch(ps []predicate, t *target) bool {
	for _, c := range ps {
		if c(t) {
			return true
		}
	}
	return false
}

func compileConditions(cs []*qdrant.Condition) ([]predicate, error) {
	out := make([]predicate, 0, len(cs))
	for _, c := range cs {
		p, err := compileCondition(c)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func compileCondition(c *qdrant.Condition) (predicate, error) {
	switch v := c.GetConditionOneOf().(type) {
	case *qdrant.Condition_Field:
		return compileField(v.Field)
	case *qdrant.Condition_IsEmpty:
		key := v.IsEmpty.GetKey()
		return func(t *target) bool { return isEmpty(t.payload, key) }, nil
	case *qdrant.Condition_IsNull:
		key := v.IsNull.GetKey()
		return func(t *target) bool { return isNull(t.payload, key) }, nil
	case *qdrant.Condition_HasId:
		ids, err := parsePointIDs(v.HasId.GetHasId())
		if err != nil {
			return nil, err
		}
		set := make(map[pointID]bool, len(ids))
		for _, id := range ids {
			set[id] = true
		}
		return func(t *target) bool { return t.hasID && set[t.id] }, nil
	case *qdrant.Condition_HasVector:
		// Collections in the double have at most the unnamed vector, which every point has.
		name := v.HasVector.GetHasVector()
		return func(t *target) bool { return name == "" && t.hasVector }, nil
	case *qdrant.Condition_Filter:
		return compileFilter(v.Filter)
	case *qdrant.Condition_Nested:
		return compileNested(v.Nested)
	default:
		// lib/api/src/grpc/conversions.rs, TryFrom<Condition>.
		return nil, errInvalid("Malformed Condition type")
	}
}

// compileNested applies the sub-filter to each object of the array under key (`key` and `key[]`
// are the same); the condition holds if one element satisfies the whole sub-filter.
func compileNested(n *qdrant.NestedCondition) (predicate, error) {
	sub, err := compileFilter(n.GetFilter())
	if err != nil {
		return nil, err
	}
	key := strings.TrimSuffix(n.GetKey(), "[]")
	return func(t *target) bool {
		vals, _ := valuesAt(t.payload, key, false)
		for _, v := range vals {
			arr, ok := v.([]any)
			if !ok {
				continue
			}
			for _, e := range arr {
				obj, ok := e.(map[string]any)
				if ok && sub(&target{payload: obj}) {
					return true
				}
			}
		}
		return false
	}, nil
}

func compileField(fc *qdrant.FieldCondition) (predicate, error) {
	key := fc.GetKey()
	var parts []predicate
	if m := fc.GetMatch(); m != nil {
		p, err := compileMatch(m)
		if err != nil {
			return nil, err
		}
		parts = append(parts, anyValue(key, p))
	}
	if r := fc.GetRange(); r != nil {
		parts = append(parts, anyValue(key, func(v any) bool { return inRange(r, v) }))
	}
	if vc := fc.GetValuesCount(); vc != nil {
		parts = append(parts, func(t *target) bool { return valuesCountMatches(vc, t.payload, key) })
	}
	if fc.IsEmpty != nil {
		want := *fc.IsEmpty
		parts = append(parts, func(t *target) bool { return isEmpty(t.payload, key) == want })
	}
	if fc.IsNull != nil {
		want := *fc.IsNull
		parts = append(parts, func(t *target) bool { return isNull(t.payload, key) == want })
	}
	switch {
	case fc.GeoBoundingBox != nil, fc.GeoRadius != nil, fc.GeoPolygon != nil:
		return nil, errUnimplemented("geo filter conditions")
	case fc.DatetimeRange != nil:
		return nil, errUnimplemented("datetime_range filter conditions")
	case len(parts) == 0:
		// Request validation of grpc::FieldCondition (lib/api/src/grpc/validate.rs).
		return nil, errValidation("match", "At least one field condition must be specified")
	}
	return func(t *target) bool {
		for _, p := range parts {
			if !p(t) {
				return false
			}
		}
		return true
	}, nil
}

// anyValue: the key's values (arrays flattened) include one satisfying p.
func anyValue(key string, p func(any) bool) predicate {
	return func(t *target) bool {
		vals, _ := valuesAt(t.payload, key, true)
		for _, v := range vals {
			if p(v) {
				return true
			}
		}
		return false
	}
}

func compileMatch(m *qdrant.Match) (func(any) bool, error) {
	switch v := m.GetMatchValue().(type) {
	case *qdrant.Match_Keyword:
		return func(x any) bool { s, ok := x.(string); return ok && s == v.Keyword }, nil
	case *qdrant.Match_Integer:
		return func(x any) bool { i, ok := x.(int64); return ok && i == v.Integer }, nil
	case *qdrant.Match_Boolean:
		return func(x any) bool { b, ok := x.(bool); return ok && b == v.Boolean }, nil
	case *qdrant.Match_Keywords:
		set := stringSet(v.Keywords.GetStrings())
		return func(x any) bool { s, ok := x.(string); return ok && set[s] }, nil
	case *qdrant.Match_Integers:
		set := intSet(v.Integers.GetIntegers())
		return func(x any) bool { i, ok := x.(int64); return ok && set[i] }, nil
	case *qdrant.Match_ExceptKeywords:
		set := stringSet(v.ExceptKeywords.GetStrings())
		return func(x any) bool {
			if x == nil {
				return false
			}
			s, ok := x.(string)
			return !ok || !set[s]
		}, nil
	case *qdrant.Match_ExceptIntegers:
		set := intSet(v.ExceptIntegers.GetIntegers())
		return func(x any) bool {
			if x == nil {
				return false
			}
			i, ok := x.(int64)
			return !ok || !set[i]
		}, nil
	case *qdrant.Match_Text, *qdrant.Match_Phrase, *qdrant.Match_TextAny:
		return nil, errUnimplemented("full-text match conditions (text, phrase, text_any)")
	default:
		return nil, errInvalid("Malformed Match condition")
	}
}

// inRange: numbers only (integer or double); booleans and strings never match a range.
func inRange(r *qdrant.Range, v any) bool {
	var f float64
	switch x := v.(type) {
	case int64:
		f = float64(x)
	case float64:
		f = x
	default:
		return false
	}
	return (r.Lt == nil || f < *r.Lt) && (r.Lte == nil || f <= *r.Lte) &&
		(r.Gt == nil || f > *r.Gt) && (r.Gte == nil || f >= *r.Gte)
}

// valuesCountMatches counts values per resolved value (an array counts its length, null 0,
// anything else 1; a missing key counts 0) and matches if one count meets every bound.
func valuesCountMatches(vc *qdrant.ValuesCount, payload map[string]any, key string) bool {
	vals, _ := valuesAt(payload, key, false)
	counts := []uint64{0}
	if len(vals) > 0 {
		counts = counts[:0]
		for _, v := range vals {
			switch x := v.(type) {
			case nil:
				counts = append(counts, 0)
			case []any:
				counts = append(counts, uint64(len(x)))
			default:
				counts = append(counts, 1)
			}
		}
	}
	for _, n := range counts {
		if (vc.Lt == nil || n < *vc.Lt) && (vc.Lte == nil || n <= *vc.Lte) &&
			(vc.Gt == nil || n > *vc.Gt) && (vc.Gte == nil || n >= *vc.Gte) {
			return true
		}
	}
	return false
}

func stringSet(ss []string) map[string]bool {
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[s] = true
	}
	return m
}

func intSet(is []int64) map[int64]bool {
	m := make(map[int64]bool, len(is))
	for _, i := range is {
		m[i] = true
	}
	return m
}

// matches runs a compiled filter on a stored point.
func (p *point) matches(pred predicate) bool {
	return pred(&target{id: p.id, hasID: true, hasVector: p.vector != nil, payload: p.payload})
}
