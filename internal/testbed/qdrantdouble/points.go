package qdrantdouble

import (
	"context"
	"math"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/protobuf/proto"
)

// pointsService implements qdrant.Points: writes (upsert, delete, payload), reads (get, scroll,
// count) and, in search.go, Search and Query. Batch, recommend, discover, facet, groups and vector
// updates are left to UnimplementedPointsServer.
//
// As in Qdrant, a request is first converted/validated (errors without touching the collection),
// then the collection is looked up (NotFound), then the operation is checked as a whole and only
// then applied, so a failing batch changes nothing.
type pointsService struct {
	qdrant.UnimplementedPointsServer
	data *store
}

// write runs fn on the collection under the store lock and answers an UpdateResult the way
// Qdrant does: operation_id is the collection's operation counter (starting at 0), status
// Completed when the client asked to wait, Acknowledged otherwise. The double applies the change
// before answering either way, so a read after an unwaited write already sees it.
func (s *store) write(name string, wait *bool, fn func(c *collection, version uint64) error) (*qdrant.UpdateResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.collections[name]
	if !ok {
		return nil, errCollectionNotFound(name)
	}
	version := c.nextOperation
	if err := fn(c, version); err != nil {
		return nil, err
	}
	c.nextOperation++
	st := qdrant.UpdateStatus_Acknowledged
	if wait != nil && *wait {
		st = qdrant.UpdateStatus_Completed
	}
	return &qdrant.UpdateResult{OperationId: proto.Uint64(version), Status: st}, nil
}

// read runs fn on the collection under the store lock.
func (s *store) read(name string, fn func(c *collection) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.collections[name]
	if !ok {
		return errCollectionNotFound(name)
	}
	return fn(c)
}

type incomingPoint struct {
	id      pointID
	vector  []float32
	named   bool // sent as a named-vector map ({"": v}), which changes the error wording
	payload map[string]any
}

// parsePointStruct converts like lib/api/src/grpc/conversions.rs (TryFrom<PointStruct>): payload,
// then vectors ("Expected some vectors"), then id ("Empty ID is not allowed").
func parsePointStruct(p *qdrant.PointStruct) (incomingPoint, error) {
	in := incomingPoint{payload: fromValueMap(p.GetPayload())}
	if p.GetVectors() == nil {
		return in, errInvalid("Expected some vectors")
	}
	switch v := p.GetVectors().GetVectorsOptions().(type) {
	case *qdrant.Vectors_Vector:
		vec, err := denseVector(v.Vector)
		if err != nil {
			return in, err
		}
		in.vector = vec
	case *qdrant.Vectors_Vectors:
		// Named vectors: the double's collections have only the unnamed one, whose name is "".
		for name := range v.Vectors.GetVectors() {
			if name != "" {
				return in, errBadInput("Vector name error: vector '%s' does not exist in collection", name)
			}
		}
		vec, err := denseVector(v.Vectors.GetVectors()[""])
		if err != nil {
			return in, err
		}
		in.vector, in.named = vec, true
	default:
		return in, errInvalid("Expected some vectors")
	}
	if p.GetId() == nil {
		return in, errInvalid("Empty ID is not allowed")
	}
	id, err := parsePointID(p.GetId())
	if err != nil {
		return in, err
	}
	in.id = id
	return in, nil
}

// denseVector reads a dense vector in either encoding: the typed `dense` variant the go-client
// builds, or the deprecated flat `data` older clients send.
func denseVector(v *qdrant.Vector) ([]float32, error) {
	switch x := v.GetVector().(type) {
	case *qdrant.Vector_Dense:
		return append([]float32(nil), x.Dense.GetData()...), nil
	case *qdrant.Vector_Sparse:
		return nil, errUnimplemented("sparse vectors")
	case *qdrant.Vector_MultiDense:
		return nil, errUnimplemented("multivectors")
	case nil:
		if v.GetIndices() != nil {
			return nil, errUnimplemented("sparse vectors")
		}
		if v.VectorsCount != nil {
			return nil, errUnimplemented("multivectors")
		}
		return append([]float32(nil), v.GetData()...), nil
	default: // Document, Image, Object: server-side inference
		return nil, errUnimplemented("inference inputs (document/image/object vectors)")
	}
}

// checkDimension is src/common/validate_vectors.rs: the unnamed vector must exist and have the
// collection's size; when the vector came as a named map ({"": v}) the message also names it.
func checkDimension(vp *qdrant.VectorParams, vec []float32, named bool) error {
	if vp == nil {
		if named {
			return errBadInput("Vector name error: vector '' does not exist in collection")
		}
		return errBadInput("Vector name error: unnamed vector does not exist in collection")
	}
	if uint64(len(vec)) != vp.GetSize() {
		if named {
			return errBadInput("Vector dimension error: expected dim: %d, got %d for vector ''", vp.GetSize(), len(vec))
		}
		return errBadInput("Vector dimension error: expected dim: %d, got %d", vp.GetSize(), len(vec))
	}
	return nil
}

// preprocess stores vectors the way Qdrant's metrics do (lib/segment/src/spaces/simple.rs,
// CosineMetric::preprocess / cosine_preprocess): Cosine vectors are scaled to unit length, so that
// scoring is a plain dot product, and returned normalised when vectors are asked for. A vector
// whose squared length is below f32::EPSILON is left as it is. Other metrics store as sent.
func preprocess(d qdrant.Distance, v []float32) []float32 {
	if d != qdrant.Distance_Cosine {
		return v
	}
	var sq float32
	for _, x := range v {
		sq += x * x
	}
	if sq < float32Epsilon {
		return v
	}
	length := float32(math.Sqrt(float64(sq)))
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = x / length
	}
	return out
}

// float32Epsilon is Rust's f32::EPSILON.
const float32Epsilon = 1.1920929e-07

func unsupportedShardKey(sel *qdrant.ShardKeySelector) error {
	if sel != nil {
		return errUnimplemented("shard key selectors")
	}
	return nil
}

func (ps *pointsService) Upsert(_ context.Context, req *qdrant.UpsertPoints) (*qdrant.PointsOperationResponse, error) {
	start := time.Now()
	if req.UpdateFilter != nil {
		return nil, errUnimplemented("conditional upsert (update_filter)")
	}
	if req.UpdateMode != nil && *req.UpdateMode != qdrant.UpdateMode_Upsert {
		return nil, errUnimplemented("update_mode %s", req.UpdateMode)
	}
	if err := unsupportedShardKey(req.ShardKeySelector); err != nil {
		return nil, err
	}
	incoming := make([]incomingPoint, 0, len(req.GetPoints()))
	for _, p := range req.GetPoints() {
		in, err := parsePointStruct(p)
		if err != nil {
			return nil, err
		}
		incoming = append(incoming, in)
	}
	res, err := ps.data.write(req.GetCollectionName(), req.Wait, func(c *collection, version uint64) error {
		vp := c.cfg.vector()
		for _, in := range incoming {
			if err := checkDimension(vp, in.vector, in.named); err != nil {
				return err
			}
		}
		// An upsert replaces the whole point, payload included; the last of duplicate ids wins.
		for _, in := range incoming {
			c.points[in.id] = &point{id: in.id, vector: preprocess(vp.GetDistance(), in.vector), payload: in.payload, version: version}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &qdrant.PointsOperationResponse{Result: res, Time: elapsed(start)}, nil
}

// selection is a converted PointsSelector: explicit ids, or a filter.
type selection struct {
	ids    []pointID
	filter predicate
}

// parseSelector converts a PointsSelector (src/tonic/api/points_common.rs: a missing selector is
// "PointSelector is missing"; lib/api/src/grpc/conversions.rs for the inside).
func parseSelector(sel *qdrant.PointsSelector) (selection, error) {
	switch s := sel.GetPointsSelectorOneOf().(type) {
	case *qdrant.PointsSelector_Points:
		ids, err := parsePointIDs(s.Points.GetIds())
		return selection{ids: ids}, err
	case *qdrant.PointsSelector_Filter:
		f, err := compileFilter(s.Filter)
		return selection{filter: f}, err
	default:
		if sel == nil {
			return selection{}, errInvalid("PointSelector is missing")
		}
		return selection{}, errInvalid("Malformed PointsSelector type")
	}
}

// resolve lists the selected points. Explicit ids that do not exist are an error when strict
// (payload operations: CollectionError::PointNotFound), and skipped otherwise (delete).
func (sel selection) resolve(c *collection, strict bool) ([]*point, error) {
	var out []*point
	if sel.filter != nil {
		for _, p := range c.sortedPoints() {
			if p.matches(sel.filter) {
				out = append(out, p)
			}
		}
		return out, nil
	}
	seen := map[pointID]bool{}
	for _, id := range sel.ids {
		p, ok := c.points[id]
		if !ok {
			if strict {
				return nil, errPointNotFound(id)
			}
			continue
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, p)
		}
	}
	return out, nil
}

func (ps *pointsService) Delete(_ context.Context, req *qdrant.DeletePoints) (*qdrant.PointsOperationResponse, error) {
	start := time.Now()
	if err := unsupportedShardKey(req.ShardKeySelector); err != nil {
		return nil, err
	}
	sel, err := parseSelector(req.GetPoints())
	if err != nil {
		return nil, err
	}
	res, err := ps.data.write(req.GetCollectionName(), req.Wait, func(c *collection, _ uint64) error {
		pts, _ := sel.resolve(c, false)
		for _, p := range pts {
			delete(c.points, p.id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &qdrant.PointsOperationResponse{Result: res, Time: elapsed(start)}, nil
}

// Get returns the existing points among the ids, in request order, each once; payload only when
// asked (lib/collection/src/collection/point_ops.rs, retrieve: default with_payload false).
func (ps *pointsService) Get(_ context.Context, req *qdrant.GetPoints) (*qdrant.GetResponse, error) {
	start := time.Now()
	if err := unsupportedShardKey(req.ShardKeySelector); err != nil {
		return nil, err
	}
	ids, err := parsePointIDs(req.GetIds())
	if err != nil {
		return nil, err
	}
	withVectors, err := wantVectors(req.GetWithVectors())
	if err != nil {
		return nil, err
	}
	resp := &qdrant.GetResponse{}
	err = ps.data.read(req.GetCollectionName(), func(c *collection) error {
		pts, _ := selection{ids: ids}.resolve(c, false)
		for _, p := range pts {
			resp.Result = append(resp.Result, p.retrieved(req.GetWithPayload(), false, withVectors))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp.Time = elapsed(start)
	return resp, nil
}

func (p *point) retrieved(sel *qdrant.WithPayloadSelector, defPayload, withVectors bool) *qdrant.RetrievedPoint {
	rp := &qdrant.RetrievedPoint{Id: p.id.proto(), Payload: selectPayload(p.payload, sel, defPayload)}
	if withVectors {
		rp.Vectors = vectorsOutput(p.vector)
	}
	return rp
}

// Scroll pages through points in id order (numeric ids first, then UUIDs), starting at `offset`
// inclusive; next_page_offset is the id of the first point after the page. Defaults from
// ScrollRequestInternal::default: limit 10, with_payload true.
func (ps *pointsService) Scroll(_ context.Context, req *qdrant.ScrollPoints) (*qdrant.ScrollResponse, error) {
	start := time.Now()
	if err := unsupportedShardKey(req.ShardKeySelector); err != nil {
		return nil, err
	}
	if req.OrderBy != nil {
		return nil, errUnimplemented("scroll order_by")
	}
	limit := 10
	if req.Limit != nil {
		if *req.Limit == 0 {
			return nil, errValidation("limit", "value 0 invalid, must be 1 or larger")
		}
		limit = int(*req.Limit)
	}
	var offset *pointID
	if req.Offset != nil {
		id, err := parsePointID(req.Offset)
		if err != nil {
			return nil, err
		}
		offset = &id
	}
	filter, err := compileFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	withVectors, err := wantVectors(req.GetWithVectors())
	if err != nil {
		return nil, err
	}
	resp := &qdrant.ScrollResponse{}
	err = ps.data.read(req.GetCollectionName(), func(c *collection) error {
		for _, p := range c.sortedPoints() {
			if offset != nil && p.id.less(*offset) {
				continue
			}
			if !p.matches(filter) {
				continue
			}
			if len(resp.Result) == limit {
				resp.NextPageOffset = p.id.proto()
				break
			}
			resp.Result = append(resp.Result, p.retrieved(req.GetWithPayload(), true, withVectors))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp.Time = elapsed(start)
	return resp, nil
}

// Count is always exact here; `exact: false` (an estimate in Qdrant) gets the exact number too.
func (ps *pointsService) Count(_ context.Context, req *qdrant.CountPoints) (*qdrant.CountResponse, error) {
	start := time.Now()
	if err := unsupportedShardKey(req.ShardKeySelector); err != nil {
		return nil, err
	}
	filter, err := compileFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	var n uint64
	err = ps.data.read(req.GetCollectionName(), func(c *collection) error {
		for _, p := range c.points {
			if p.matches(filter) {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &qdrant.CountResponse{Result: &qdrant.CountResult{Count: n}, Time: elapsed(start)}, nil
}

// payloadWrite is the common shape of the payload operations: convert, resolve the selection
// strictly (a missing explicit id fails the whole call), apply to each point.
func (ps *pointsService) payloadWrite(name string, wait *bool, selector *qdrant.PointsSelector, apply func(p *point)) (*qdrant.PointsOperationResponse, error) {
	start := time.Now()
	sel, err := parseSelector(selector)
	if err != nil {
		return nil, err
	}
	res, err := ps.data.write(name, wait, func(c *collection, version uint64) error {
		pts, err := sel.resolve(c, true)
		if err != nil {
			return err
		}
		for _, p := range pts {
			apply(p)
			p.version = version
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &qdrant.PointsOperationResponse{Result: res, Time: elapsed(start)}, nil
}

// SetPayload merges the given keys into the payload (other keys stay); with `key`, into the object
// at that path, created if missing. This is what tag updates without re-embedding use.
func (ps *pointsService) SetPayload(_ context.Context, req *qdrant.SetPayloadPoints) (*qdrant.PointsOperationResponse, error) {
	if err := unsupportedShardKey(req.ShardKeySelector); err != nil {
		return nil, err
	}
	if req.Key != nil {
		for _, it := range parsePath(req.GetKey()) {
			if it.wildcard || it.index >= 0 {
				return nil, errUnimplemented("set_payload with an array path as key")
			}
		}
	}
	values := fromValueMap(req.GetPayload())
	return ps.payloadWrite(req.GetCollectionName(), req.Wait, req.GetPointsSelector(), func(p *point) {
		dst := p.payload
		if req.Key != nil {
			dst, _ = objectAt(p.payload, req.GetKey(), true) // plain field path: always succeeds
		}
		for k, v := range values {
			dst[k] = deepCopy(v)
		}
	})
}

// OverwritePayload replaces the whole payload.
func (ps *pointsService) OverwritePayload(_ context.Context, req *qdrant.SetPayloadPoints) (*qdrant.PointsOperationResponse, error) {
	if err := unsupportedShardKey(req.ShardKeySelector); err != nil {
		return nil, err
	}
	if req.Key != nil {
		return nil, errUnimplemented("overwrite_payload with a key")
	}
	values := fromValueMap(req.GetPayload())
	return ps.payloadWrite(req.GetCollectionName(), req.Wait, req.GetPointsSelector(), func(p *point) {
		p.payload = deepCopy(values).(map[string]any)
	})
}

// DeletePayload removes keys (paths such as `a.b` or `a[].b` included).
func (ps *pointsService) DeletePayload(_ context.Context, req *qdrant.DeletePayloadPoints) (*qdrant.PointsOperationResponse, error) {
	if err := unsupportedShardKey(req.ShardKeySelector); err != nil {
		return nil, err
	}
	keys := req.GetKeys()
	return ps.payloadWrite(req.GetCollectionName(), req.Wait, req.GetPointsSelector(), func(p *point) {
		for _, k := range keys {
			deleteAt(p.payload, parsePath(k))
		}
	})
}

// ClearPayload removes the whole payload.
func (ps *pointsService) ClearPayload(_ context.Context, req *qdrant.ClearPayloadPoints) (*qdrant.PointsOperationResponse, error) {
	if err := unsupportedShardKey(req.ShardKeySelector); err != nil {
		return nil, err
	}
	return ps.payloadWrite(req.GetCollectionName(), req.Wait, req.GetPoints(), func(p *point) {
		p.payload = map[string]any{}
	})
}

// fieldSchemaTypes maps the request's FieldType onto the PayloadSchemaType that CollectionInfo
// reports (the enums are offset by one).
var fieldSchemaTypes = map[qdrant.FieldType]qdrant.PayloadSchemaType{
	qdrant.FieldType_FieldTypeKeyword:  qdrant.PayloadSchemaType_Keyword,
	qdrant.FieldType_FieldTypeInteger:  qdrant.PayloadSchemaType_Integer,
	qdrant.FieldType_FieldTypeFloat:    qdrant.PayloadSchemaType_Float,
	qdrant.FieldType_FieldTypeGeo:      qdrant.PayloadSchemaType_Geo,
	qdrant.FieldType_FieldTypeText:     qdrant.PayloadSchemaType_Text,
	qdrant.FieldType_FieldTypeBool:     qdrant.PayloadSchemaType_Bool,
	qdrant.FieldType_FieldTypeDatetime: qdrant.PayloadSchemaType_Datetime,
	qdrant.FieldType_FieldTypeUuid:     qdrant.PayloadSchemaType_Uuid,
}

// CreateFieldIndex records a payload index so that CollectionInfo.payload_schema shows it (with
// the number of points having the field). Filtering does not need it and does not use it.
func (ps *pointsService) CreateFieldIndex(_ context.Context, req *qdrant.CreateFieldIndexCollection) (*qdrant.PointsOperationResponse, error) {
	start := time.Now()
	schema := &qdrant.PayloadSchemaInfo{}
	if req.FieldIndexParams != nil {
		schema.Params = proto.Clone(req.FieldIndexParams).(*qdrant.PayloadIndexParams)
	}
	switch {
	case req.FieldType != nil:
		t, ok := fieldSchemaTypes[*req.FieldType]
		if !ok {
			return nil, errInvalid("Cannot convert field type: %d", int32(*req.FieldType))
		}
		schema.DataType = t
	case req.FieldIndexParams != nil:
		schema.DataType = schemaTypeOfParams(req.FieldIndexParams)
	default:
		return nil, errBadRequest("Field type is not specified for field `%s`", req.GetFieldName())
	}
	res, err := ps.data.write(req.GetCollectionName(), req.Wait, func(c *collection, _ uint64) error {
		c.schema[req.GetFieldName()] = schema
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &qdrant.PointsOperationResponse{Result: res, Time: elapsed(start)}, nil
}

func schemaTypeOfParams(p *qdrant.PayloadIndexParams) qdrant.PayloadSchemaType {
	switch p.GetIndexParams().(type) {
	case *qdrant.PayloadIndexParams_KeywordIndexParams:
		return qdrant.PayloadSchemaType_Keyword
	case *qdrant.PayloadIndexParams_IntegerIndexParams:
		return qdrant.PayloadSchemaType_Integer
	case *qdrant.PayloadIndexParams_FloatIndexParams:
		return qdrant.PayloadSchemaType_Float
	case *qdrant.PayloadIndexParams_GeoIndexParams:
		return qdrant.PayloadSchemaType_Geo
	case *qdrant.PayloadIndexParams_TextIndexParams:
		return qdrant.PayloadSchemaType_Text
	case *qdrant.PayloadIndexParams_BoolIndexParams:
		return qdrant.PayloadSchemaType_Bool
	case *qdrant.PayloadIndexParams_DatetimeIndexParams:
		return qdrant.PayloadSchemaType_Datetime
	case *qdrant.PayloadIndexParams_UuidIndexParams:
		return qdrant.PayloadSchemaType_Uuid
	default:
		return qdrant.PayloadSchemaType_UnknownType
	}
}

func (ps *pointsService) DeleteFieldIndex(_ context.Context, req *qdrant.DeleteFieldIndexCollection) (*qdrant.PointsOperationResponse, error) {
	start := time.Now()
	res, err := ps.data.write(req.GetCollectionName(), req.Wait, func(c *collection, _ uint64) error {
		delete(c.schema, req.GetFieldName())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &qdrant.PointsOperationResponse{Result: res, Time: elapsed(start)}, nil
}
