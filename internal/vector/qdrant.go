package vector

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ragstack/rag-operator/internal/serverconfig"
)

// QdrantOptions configure the Qdrant store.
type QdrantOptions struct {
	// Addr is Qdrant's gRPC endpoint, host:port (port 6334).
	Addr   string
	APIKey string
	// ReadOnlyAPIKey, when set, is used for searches and counts (a second connection): the
	// query path holds a key that cannot write or delete.
	ReadOnlyAPIKey string
	// UseTLS dials with TLS (needed for an API key to travel anywhere but a trusted network).
	UseTLS     bool
	Collection serverconfig.Collection
	// HNSWEf is the search-time ef used when SearchOptions.HNSWEf is 0; 0 leaves Qdrant's.
	HNSWEf int
	// UpsertBatch is the most points per Upsert request. Default 64.
	UpsertBatch int
	// SkipCompatibilityCheck skips the client/server version check at connect (tests; a double).
	SkipCompatibilityCheck bool
	// CreateIfMissing lets EnsureCollection create an absent collection with the configured size
	// and distance. The operator normally owns the collection (and its HNSW/quantization
	// settings); this is for a server run without it, and for tests.
	CreateIfMissing bool
	// Timeout bounds each RPC whose context has no deadline. Default 30s.
	Timeout time.Duration
}

// Qdrant is the Store on a Qdrant collection, over gRPC.
type Qdrant struct {
	client *qdrant.Client
	// reader serves searches and counts: client, or a connection with the read-only key.
	reader *qdrant.Client
	opts   QdrantOptions
	name   string
	size   int
	dist   distance
}

var _ Store = (*Qdrant)(nil)

// NewQdrant connects to Qdrant. The gRPC connection is made lazily, so an unreachable Qdrant does
// not fail here (Ping and EnsureCollection report it); ctx only bounds what connecting does
// before returning.
func NewQdrant(ctx context.Context, o QdrantOptions) (*Qdrant, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	host, portStr, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("qdrant address %q: want host:port: %w", o.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("qdrant address %q: bad port", o.Addr)
	}
	if o.Collection.Name == "" || o.Collection.VectorSize < 1 {
		return nil, fmt.Errorf("qdrant: collection needs a name and a vector size, got %+v", o.Collection)
	}
	dist, err := parseDistance(o.Collection.Distance)
	if err != nil {
		return nil, err
	}
	if o.UpsertBatch < 1 {
		o.UpsertBatch = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	client, err := qdrant.NewClient(&qdrant.Config{
		Host:                   host,
		Port:                   port,
		APIKey:                 o.APIKey,
		UseTLS:                 o.UseTLS,
		SkipCompatibilityCheck: o.SkipCompatibilityCheck,
	})
	if err != nil {
		return nil, fmt.Errorf("qdrant %s: %w", o.Addr, err)
	}
	reader := client
	if o.ReadOnlyAPIKey != "" {
		if reader, err = qdrant.NewClient(&qdrant.Config{
			Host: host, Port: port, APIKey: o.ReadOnlyAPIKey, UseTLS: o.UseTLS, SkipCompatibilityCheck: o.SkipCompatibilityCheck,
		}); err != nil {
			client.Close()
			return nil, fmt.Errorf("qdrant %s (read-only key): %w", o.Addr, err)
		}
	}
	return &Qdrant{client: client, reader: reader, opts: o, name: o.Collection.Name, size: o.Collection.VectorSize, dist: dist}, nil
}

func (q *Qdrant) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, q.opts.Timeout)
}

// Close closes the gRPC connections.
func (q *Qdrant) Close() error {
	if q.reader != q.client {
		q.reader.Close()
	}
	return q.client.Close()
}

// Ping is Qdrant's health check, followed by an authenticated look at the collection: Qdrant
// answers HealthCheck without checking the API key, so on its own it would report ready a
// server whose every real call fails with Unauthenticated (or whose collection is gone).
func (q *Qdrant) Ping(ctx context.Context) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	if _, err := q.client.HealthCheck(ctx); err != nil {
		return err
	}
	ok, err := q.client.CollectionExists(ctx, q.name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("qdrant collection %q does not exist", q.name)
	}
	return nil
}

// payloadIndexes are the fields the server filters on. Without an index Qdrant scans payloads
// for every filtered search, and its filtered HNSW search (an API key limited to tags) degrades;
// these belong to the RAG server's queries, so the server, not the operator, keeps them.
var payloadIndexes = []struct {
	field string
	typ   qdrant.FieldType
	want  qdrant.PayloadSchemaType
}{
	{KeyDocumentID, qdrant.FieldType_FieldTypeKeyword, qdrant.PayloadSchemaType_Keyword},
	{KeyTags, qdrant.FieldType_FieldTypeKeyword, qdrant.PayloadSchemaType_Keyword},
	{KeyChunkIndex, qdrant.FieldType_FieldTypeInteger, qdrant.PayloadSchemaType_Integer},
}

// EnsureCollection checks the collection has the configured vector size and distance (creating
// it first when CreateIfMissing allows), and creates the payload indexes the server filters on.
func (q *Qdrant) EnsureCollection(ctx context.Context) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	info, err := q.client.GetCollectionInfo(ctx, q.name)
	if status.Code(err) == codes.NotFound {
		if !q.opts.CreateIfMissing {
			return fmt.Errorf("qdrant collection %q does not exist (the operator creates it): %w", q.name, err)
		}
		err = q.client.CreateCollection(ctx, &qdrant.CreateCollection{
			CollectionName: q.name,
			VectorsConfig: qdrant.NewVectorsConfig(&qdrant.VectorParams{
				Size:     uint64(q.size),
				Distance: qdrantDistance(q.dist),
			}),
		})
		if err != nil && status.Code(err) != codes.AlreadyExists { // another replica won the race
			return fmt.Errorf("qdrant: creating collection %q: %w", q.name, err)
		}
		info, err = q.client.GetCollectionInfo(ctx, q.name)
	}
	if err != nil {
		return fmt.Errorf("qdrant: collection %q: %w", q.name, err)
	}
	params := info.GetConfig().GetParams().GetVectorsConfig().GetParams()
	if params == nil {
		return fmt.Errorf("%w: qdrant collection %q has named vectors; the server needs one unnamed vector", ErrCollectionMismatch, q.name)
	}
	if int(params.GetSize()) != q.size {
		return fmt.Errorf("%w: qdrant collection %q has vector size %d, configured %d", ErrCollectionMismatch, q.name, params.GetSize(), q.size)
	}
	if got := params.GetDistance(); got != qdrantDistance(q.dist) {
		return fmt.Errorf("%w: qdrant collection %q has distance %s, configured %s", ErrCollectionMismatch, q.name, got, q.dist)
	}
	schema := info.GetPayloadSchema()
	wait := true
	for _, ix := range payloadIndexes {
		if s, ok := schema[ix.field]; ok {
			if s.GetDataType() != ix.want {
				return fmt.Errorf("%w: qdrant collection %q indexes %s as %s, the server needs %s", ErrCollectionMismatch, q.name, ix.field, s.GetDataType(), ix.want)
			}
			continue
		}
		typ := ix.typ
		if _, err := q.client.CreateFieldIndex(ctx, &qdrant.CreateFieldIndexCollection{
			CollectionName: q.name, Wait: &wait, FieldName: ix.field, FieldType: &typ,
		}); err != nil {
			return fmt.Errorf("qdrant: indexing %s on %q: %w", ix.field, q.name, err)
		}
	}
	return nil
}

func qdrantDistance(d distance) qdrant.Distance {
	return [...]qdrant.Distance{qdrant.Distance_Cosine, qdrant.Distance_Dot, qdrant.Distance_Euclid, qdrant.Distance_Manhattan}[d]
}

// Upsert writes chunks in batches of UpsertBatch, each waited for (wait=true), so a point is
// searchable when Upsert returns. All chunks are validated first; a failing batch is named, and
// the batches before it stay written (re-upserting is idempotent: ids are deterministic).
func (q *Qdrant) Upsert(ctx context.Context, chunks []Chunk) error {
	if err := validateChunks(chunks, q.size); err != nil {
		return err
	}
	wait := true
	for start := 0; start < len(chunks); start += q.opts.UpsertBatch {
		end := min(start+q.opts.UpsertBatch, len(chunks))
		points := make([]*qdrant.PointStruct, 0, end-start)
		for _, c := range chunks[start:end] {
			points = append(points, &qdrant.PointStruct{
				Id:      qdrant.NewID(PointID(c.DocumentID, c.ChunkIndex)),
				Vectors: qdrant.NewVectorsDense(c.Vector),
				Payload: payload(c),
			})
		}
		err := q.call(ctx, func(ctx context.Context) error {
			_, err := q.client.Upsert(ctx, &qdrant.UpsertPoints{CollectionName: q.name, Wait: &wait, Points: points})
			return err
		})
		if err != nil {
			return fmt.Errorf("qdrant upsert batch %d/%d (chunks %d..%d): %w",
				start/q.opts.UpsertBatch+1, (len(chunks)+q.opts.UpsertBatch-1)/q.opts.UpsertBatch, start, end-1, dimensionError(err))
		}
	}
	return nil
}

func (q *Qdrant) call(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	return fn(ctx)
}

// payload builds a point's payload. gRPC strings must be valid UTF-8 (marshalling fails
// otherwise), and parsers can hand over anything, so text is sanitised here.
func payload(c Chunk) map[string]*qdrant.Value {
	tags := make([]*qdrant.Value, len(c.Tags))
	for i, t := range c.Tags {
		tags[i] = qdrant.NewValueString(utf8(t))
	}
	return map[string]*qdrant.Value{
		KeyDocumentID: qdrant.NewValueString(utf8(c.DocumentID)),
		KeyName:       qdrant.NewValueString(utf8(c.Name)),
		KeyChunkIndex: qdrant.NewValueInt(int64(c.ChunkIndex)),
		KeyText:       qdrant.NewValueString(utf8(c.Text)),
		KeyTags:       qdrant.NewValueFromList(tags...),
		KeyPage:       qdrant.NewValueInt(int64(c.Page)),
		KeySection:    qdrant.NewValueString(utf8(c.Section)),
	}
}

func utf8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func docFilter(documentID string) []*qdrant.Condition {
	return []*qdrant.Condition{qdrant.NewMatchKeyword(KeyDocumentID, documentID)}
}

// DeleteDocument deletes the document's points, or with keepChunks >= 0 those with
// chunk_index >= keepChunks (a range condition), waiting for the deletion to apply.
func (q *Qdrant) DeleteDocument(ctx context.Context, documentID string, keepChunks int) error {
	must := docFilter(documentID)
	if keepChunks >= 0 {
		gte := float64(keepChunks)
		must = append(must, qdrant.NewRange(KeyChunkIndex, &qdrant.Range{Gte: &gte}))
	}
	wait := true
	return q.call(ctx, func(ctx context.Context) error {
		_, err := q.client.Delete(ctx, &qdrant.DeletePoints{
			CollectionName: q.name, Wait: &wait,
			Points: qdrant.NewPointsSelectorFilter(&qdrant.Filter{Must: must}),
		})
		if err != nil {
			return fmt.Errorf("qdrant delete document %s: %w", documentID, err)
		}
		return nil
	})
}

// SetTags sets the tags key of every point of the document (SetPayload by filter; the other
// payload keys are kept).
func (q *Qdrant) SetTags(ctx context.Context, documentID string, tags []string) error {
	vals := make([]*qdrant.Value, len(tags))
	for i, t := range tags {
		vals[i] = qdrant.NewValueString(utf8(t))
	}
	wait := true
	return q.call(ctx, func(ctx context.Context) error {
		_, err := q.client.SetPayload(ctx, &qdrant.SetPayloadPoints{
			CollectionName: q.name, Wait: &wait,
			Payload:        map[string]*qdrant.Value{KeyTags: qdrant.NewValueFromList(vals...)},
			PointsSelector: qdrant.NewPointsSelectorFilter(&qdrant.Filter{Must: docFilter(documentID)}),
		})
		if err != nil {
			return fmt.Errorf("qdrant set tags of %s: %w", documentID, err)
		}
		return nil
	})
}

func qdrantFilter(f Filter) *qdrant.Filter {
	var must []*qdrant.Condition
	if len(f.AnyTags) > 0 {
		must = append(must, qdrant.NewMatchKeywords(KeyTags, f.AnyTags...))
	}
	if len(f.DocumentIDs) > 0 {
		must = append(must, qdrant.NewMatchKeywords(KeyDocumentID, f.DocumentIDs...))
	}
	if len(must) == 0 {
		return nil
	}
	return &qdrant.Filter{Must: must}
}

// Search queries the nearest points (Query API, params.hnsw_ef, score_threshold, filter).
func (q *Qdrant) Search(ctx context.Context, vector []float32, opts SearchOptions) ([]Hit, error) {
	if err := checkQuery(vector, q.size); err != nil {
		return nil, err
	}
	limit := uint64(defaultLimit(opts.Limit))
	req := &qdrant.QueryPoints{
		CollectionName: q.name,
		Query:          qdrant.NewQueryDense(vector),
		Filter:         qdrantFilter(opts.Filter),
		Limit:          &limit,
		WithPayload:    qdrant.NewWithPayloadInclude(KeyDocumentID, KeyName, KeyChunkIndex, KeyText, KeyTags, KeyPage, KeySection),
	}
	if ef := opts.HNSWEf; ef > 0 || q.opts.HNSWEf > 0 {
		if ef <= 0 {
			ef = q.opts.HNSWEf
		}
		e := uint64(ef)
		req.Params = &qdrant.SearchParams{HnswEf: &e}
	}
	if t := opts.ScoreThreshold; t != 0 {
		if q.dist.lowerIsBetter() {
			t = -t // our scale is minus the distance; Qdrant's threshold is a maximum distance
		}
		req.ScoreThreshold = &t
	}
	var points []*qdrant.ScoredPoint
	err := q.call(ctx, func(ctx context.Context) error {
		var err error
		points, err = q.reader.Query(ctx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("qdrant search: %w", dimensionError(err))
	}
	hits := make([]Hit, 0, len(points))
	for _, p := range points {
		score := p.GetScore()
		if q.dist.lowerIsBetter() {
			score = -score
		}
		hits = append(hits, Hit{Chunk: chunkFromPayload(p.GetPayload()), Score: score})
	}
	return hits, nil
}

func chunkFromPayload(pl map[string]*qdrant.Value) Chunk {
	c := Chunk{
		DocumentID: pl[KeyDocumentID].GetStringValue(),
		Name:       pl[KeyName].GetStringValue(),
		ChunkIndex: int(pl[KeyChunkIndex].GetIntegerValue()),
		Text:       pl[KeyText].GetStringValue(),
		Page:       int(pl[KeyPage].GetIntegerValue()),
		Section:    pl[KeySection].GetStringValue(),
	}
	for _, v := range pl[KeyTags].GetListValue().GetValues() {
		c.Tags = append(c.Tags, v.GetStringValue())
	}
	return c
}

// Count counts points matching f, exactly.
func (q *Qdrant) Count(ctx context.Context, f Filter) (int, error) {
	exact := true
	var n uint64
	err := q.call(ctx, func(ctx context.Context) error {
		var err error
		n, err = q.reader.Count(ctx, &qdrant.CountPoints{CollectionName: q.name, Filter: qdrantFilter(f), Exact: &exact})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("qdrant count: %w", err)
	}
	return int(n), nil
}

// dimensionError adds ErrDimension to Qdrant's own "Vector dimension error" (a collection
// changed behind the server's back), so callers see one error for both sides.
func dimensionError(err error) error {
	if status.Code(err) == codes.InvalidArgument && strings.Contains(err.Error(), "dimension") {
		return fmt.Errorf("%w: %w", ErrDimension, err)
	}
	return err
}
