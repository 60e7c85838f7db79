package qdrantdouble

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/qdrant/go-client/qdrant"
)

// Exact (brute-force) nearest-neighbour search. HNSW parameters, hnsw_ef, `exact` and
// quantization search params are accepted and have no effect: on the small collections tests use,
// Qdrant itself does a full scan (below full_scan_threshold), so exact results are what it returns.
//
// Scores are those Qdrant reports (metrics in lib/segment/src/spaces/simple.rs; the reported value
// and the order as in qdrant-client's mirror, qdrant_client/local/distances.py: calculate_distance
// and distance_to_order):
//   - Cosine: dot product of the normalised vectors (stored ones were normalised at upsert), higher
//     is better;
//   - Dot: dot product, higher is better;
//   - Euclid: the distance sqrt(Σ(a-b)²), LOWER is better, results ascending;
//   - Manhattan: Σ|a-b|, lower is better.
// score_threshold follows the same direction: a minimum score for Cosine/Dot, a maximum distance
// for Euclid/Manhattan. Both bounds are inclusive here; whether Qdrant keeps a score exactly equal
// to the threshold was not checked.

type scored struct {
	p     *point
	score float32
}

type searchRequest struct {
	vector    []float32
	filter    predicate
	limit     int
	offset    int
	threshold *float32
	exclude   map[pointID]bool
}

func biggerIsBetter(d qdrant.Distance) bool {
	return d == qdrant.Distance_Cosine || d == qdrant.Distance_Dot
}

func score(d qdrant.Distance, q, v []float32) float32 {
	var s float32
	switch d {
	case qdrant.Distance_Euclid:
		for i := range q {
			diff := q[i] - v[i]
			s += diff * diff
		}
		return float32(math.Sqrt(float64(s)))
	case qdrant.Distance_Manhattan:
		for i := range q {
			s += float32(math.Abs(float64(q[i] - v[i])))
		}
		return s
	default: // Cosine (both sides normalised) and Dot
		for i := range q {
			s += q[i] * v[i]
		}
		return s
	}
}

// search scores every matching point and returns the page [offset, offset+limit). Ties are broken
// by point id so that results are deterministic.
func (c *collection) search(r searchRequest) []scored {
	vp := c.cfg.vector()
	d := vp.GetDistance()
	q := preprocess(d, r.vector)
	better := biggerIsBetter(d)
	var hits []scored
	for _, p := range c.points {
		if r.exclude[p.id] || !p.matches(r.filter) {
			continue
		}
		s := score(d, q, p.vector)
		if r.threshold != nil && ((better && s < *r.threshold) || (!better && s > *r.threshold)) {
			continue
		}
		hits = append(hits, scored{p: p, score: s})
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].score != hits[j].score {
			return (hits[i].score > hits[j].score) == better
		}
		return hits[i].p.id.less(hits[j].p.id)
	})
	if r.offset >= len(hits) {
		return nil
	}
	hits = hits[r.offset:]
	if len(hits) > r.limit {
		hits = hits[:r.limit]
	}
	return hits
}

func (h scored) proto(sel *qdrant.WithPayloadSelector, withVectors bool) *qdrant.ScoredPoint {
	sp := &qdrant.ScoredPoint{
		Id:      h.p.id.proto(),
		Payload: selectPayload(h.p.payload, sel, false), // search/query default: no payload
		Score:   h.score,
		Version: h.p.version,
	}
	if withVectors {
		sp.Vectors = vectorsOutput(h.p.vector)
	}
	return sp
}

// checkQueryVector: the collection must have the (unnamed) vector being searched, and the query
// must have its size (OperationError::WrongVectorDimension / VectorNameNotExists in
// lib/segment/src/common/operation_error.rs, reaching the client as "Wrong input: …").
func checkQueryVector(c *collection, vec []float32) error {
	vp := c.cfg.vector()
	if vp == nil {
		return errBadInput("Not existing vector name error: ")
	}
	if uint64(len(vec)) != vp.GetSize() {
		return errBadInput("Vector dimension error: expected dim: %d, got %d", vp.GetSize(), len(vec))
	}
	return nil
}

// Search is the classic search API (SearchPoints).
func (ps *pointsService) Search(_ context.Context, req *qdrant.SearchPoints) (*qdrant.SearchResponse, error) {
	start := time.Now()
	if err := unsupportedShardKey(req.ShardKeySelector); err != nil {
		return nil, err
	}
	if req.SparseIndices != nil {
		return nil, errUnimplemented("sparse vector search")
	}
	if name := req.GetVectorName(); name != "" {
		return nil, errBadInput("Not existing vector name error: %s", name)
	}
	if req.GetLimit() == 0 {
		return nil, errValidation("limit", "value 0 invalid, must be 1 or larger")
	}
	filter, err := compileFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	withVectors, err := wantVectors(req.GetWithVectors())
	if err != nil {
		return nil, err
	}
	resp := &qdrant.SearchResponse{}
	err = ps.data.read(req.GetCollectionName(), func(c *collection) error {
		if err := checkQueryVector(c, req.GetVector()); err != nil {
			return err
		}
		hits := c.search(searchRequest{
			vector:    req.GetVector(),
			filter:    filter,
			limit:     int(req.GetLimit()),
			offset:    int(req.GetOffset()),
			threshold: req.ScoreThreshold,
		})
		for _, h := range hits {
			resp.Result = append(resp.Result, h.proto(req.GetWithPayload(), withVectors))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp.Time = elapsed(start)
	return resp, nil
}

// Query is the universal query API, modelled for its `nearest` form: a dense vector or the id of a
// stored point (that point is left out of the results, as Qdrant leaves out the points a query
// refers to by id). Limit
// defaults to 10 (QueryRequestInternal), payload to none. Prefetch, fusion, recommend, discover,
// order_by, formula, sampling and lookup_from answer Unimplemented.
func (ps *pointsService) Query(_ context.Context, req *qdrant.QueryPoints) (*qdrant.QueryResponse, error) {
	start := time.Now()
	if err := unsupportedShardKey(req.ShardKeySelector); err != nil {
		return nil, err
	}
	if len(req.GetPrefetch()) > 0 {
		return nil, errUnimplemented("query prefetch")
	}
	if req.LookupFrom != nil {
		return nil, errUnimplemented("query lookup_from")
	}
	if name := req.GetUsing(); name != "" {
		return nil, errBadInput("Not existing vector name error: %s", name)
	}
	limit := 10
	if req.Limit != nil {
		if *req.Limit == 0 {
			return nil, errValidation("limit", "value 0 invalid, must be 1 or larger")
		}
		limit = int(*req.Limit)
	}
	nearest, ok := req.GetQuery().GetVariant().(*qdrant.Query_Nearest)
	if !ok {
		if req.Query == nil {
			return nil, errUnimplemented("query without a `query` (plain listing)")
		}
		return nil, errUnimplemented("query variant %T", req.GetQuery().GetVariant())
	}
	var (
		vector []float32
		byID   *pointID
	)
	switch in := nearest.Nearest.GetVariant().(type) {
	case *qdrant.VectorInput_Dense:
		vector = in.Dense.GetData()
	case *qdrant.VectorInput_Id:
		id, err := parsePointID(in.Id)
		if err != nil {
			return nil, err
		}
		byID = &id
	case *qdrant.VectorInput_Sparse:
		return nil, errUnimplemented("sparse vector queries")
	case *qdrant.VectorInput_MultiDense:
		return nil, errUnimplemented("multivector queries")
	default:
		return nil, errUnimplemented("inference inputs (document/image/object queries)")
	}
	filter, err := compileFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	withVectors, err := wantVectors(req.GetWithVectors())
	if err != nil {
		return nil, err
	}
	resp := &qdrant.QueryResponse{}
	err = ps.data.read(req.GetCollectionName(), func(c *collection) error {
		exclude := map[pointID]bool{}
		if byID != nil {
			p, ok := c.points[*byID]
			if !ok {
				return errPointNotFound(*byID)
			}
			vector = p.vector
			exclude[*byID] = true
		}
		if err := checkQueryVector(c, vector); err != nil {
			return err
		}
		hits := c.search(searchRequest{
			vector:    vector,
			filter:    filter,
			limit:     limit,
			offset:    int(req.GetOffset()),
			threshold: req.ScoreThreshold,
			exclude:   exclude,
		})
		for _, h := range hits {
			resp.Result = append(resp.Result, h.proto(req.GetWithPayload(), withVectors))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp.Time = elapsed(start)
	return resp, nil
}
