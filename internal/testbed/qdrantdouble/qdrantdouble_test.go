package qdrantdouble

import (
	"context"
	"errors"
	"math"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// Every test drives the double through the real go-client, as production code will.

func newClient(t *testing.T, s *Server, apiKey string) *qdrant.Client {
	t.Helper()
	host, port := s.Addr()
	c, err := qdrant.NewClient(&qdrant.Config{Host: host, Port: port, APIKey: apiKey, SkipCompatibilityCheck: true})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// wantStatus checks the gRPC code and, when msg is not empty, the exact message.
func wantStatus(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s error, got nil", code)
	}
	// The client wraps the gRPC error in a QdrantError; take the status itself, whose message is
	// the server's text alone.
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		t.Fatalf("not a gRPC status error: %v", err)
	}
	st := se.GRPCStatus()
	if st.Code() != code {
		t.Fatalf("want code %s, got %s (%v)", code, st.Code(), err)
	}
	if msg != "" && st.Message() != msg {
		t.Fatalf("want message %q, got %q", msg, st.Message())
	}
}

func wantEqual(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("%s differs\n got: %s\nwant: %s", what, prototext.Format(got), prototext.Format(want))
	}
}

func createCollection(t *testing.T, c *qdrant.Client, name string, size uint64, d qdrant.Distance) {
	t.Helper()
	err := c.CreateCollection(ctx(t), &qdrant.CreateCollection{
		CollectionName: name,
		VectorsConfig:  qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: size, Distance: d}),
	})
	if err != nil {
		t.Fatalf("CreateCollection: %v", err)
	}
}

func upsert(t *testing.T, c *qdrant.Client, name string, pts ...*qdrant.PointStruct) {
	t.Helper()
	res, err := c.Upsert(ctx(t), &qdrant.UpsertPoints{CollectionName: name, Wait: proto.Bool(true), Points: pts})
	if err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	if res.GetStatus() != qdrant.UpdateStatus_Completed {
		t.Fatalf("Upsert status %s", res.GetStatus())
	}
}

func pt(id uint64, payload map[string]any, v ...float32) *qdrant.PointStruct {
	return &qdrant.PointStruct{Id: qdrant.NewIDNum(id), Vectors: qdrant.NewVectors(v...), Payload: qdrant.NewValueMap(payload)}
}

func ids(t *testing.T, pts any) []string {
	t.Helper()
	var out []string
	switch x := pts.(type) {
	case []*qdrant.ScoredPoint:
		for _, p := range x {
			out = append(out, idString(p.GetId()))
		}
	case []*qdrant.RetrievedPoint:
		for _, p := range x {
			out = append(out, idString(p.GetId()))
		}
	}
	return out
}

func idString(id *qdrant.PointId) string {
	if u := id.GetUuid(); u != "" {
		return u
	}
	return pointID{num: id.GetNum()}.String()
}

func TestCreateGetRoundTripOfEveryConfigField(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")

	req := &qdrant.CreateCollection{
		CollectionName: "docs",
		VectorsConfig: qdrant.NewVectorsConfig(&qdrant.VectorParams{
			Size: 768, Distance: qdrant.Distance_Cosine, OnDisk: proto.Bool(true),
			HnswConfig: &qdrant.HnswConfigDiff{M: proto.Uint64(24)},
		}),
		HnswConfig: &qdrant.HnswConfigDiff{
			M: proto.Uint64(32), EfConstruct: proto.Uint64(256), FullScanThreshold: proto.Uint64(5000),
			OnDisk: proto.Bool(true), PayloadM: proto.Uint64(8),
		},
		OptimizersConfig: &qdrant.OptimizersConfigDiff{
			IndexingThreshold: proto.Uint64(0), DefaultSegmentNumber: proto.Uint64(2), MemmapThreshold: proto.Uint64(50000),
			MaxOptimizationThreads: qdrant.NewMaxOptimizationThreads(2),
		},
		WalConfig:     &qdrant.WalConfigDiff{WalCapacityMb: proto.Uint64(64)},
		OnDiskPayload: proto.Bool(false),
		QuantizationConfig: qdrant.NewQuantizationScalar(&qdrant.ScalarQuantization{
			Type: qdrant.QuantizationType_Int8, Quantile: proto.Float32(0.99), AlwaysRam: proto.Bool(true),
		}),
	}
	if err := c.CreateCollection(ctx(t), req); err != nil {
		t.Fatal(err)
	}
	info, err := c.GetCollectionInfo(ctx(t), "docs")
	if err != nil {
		t.Fatal(err)
	}
	want := &qdrant.CollectionConfig{
		Params: &qdrant.CollectionParams{
			ShardNumber: 1, OnDiskPayload: false,
			VectorsConfig: qdrant.NewVectorsConfig(&qdrant.VectorParams{
				Size: 768, Distance: qdrant.Distance_Cosine, OnDisk: proto.Bool(true),
				HnswConfig: &qdrant.HnswConfigDiff{M: proto.Uint64(24)},
			}),
			ReplicationFactor: proto.Uint32(1), WriteConsistencyFactor: proto.Uint32(1),
		},
		HnswConfig: &qdrant.HnswConfigDiff{
			M: proto.Uint64(32), EfConstruct: proto.Uint64(256), FullScanThreshold: proto.Uint64(5000),
			MaxIndexingThreads: proto.Uint64(0), OnDisk: proto.Bool(true), PayloadM: proto.Uint64(8),
		},
		OptimizerConfig: &qdrant.OptimizersConfigDiff{
			DeletedThreshold: proto.Float64(0.2), VacuumMinVectorNumber: proto.Uint64(1000),
			DefaultSegmentNumber: proto.Uint64(2), MemmapThreshold: proto.Uint64(50000),
			IndexingThreshold: proto.Uint64(0), FlushIntervalSec: proto.Uint64(5),
			DeprecatedMaxOptimizationThreads: proto.Uint64(2),
			MaxOptimizationThreads:           qdrant.NewMaxOptimizationThreads(2),
		},
		WalConfig: &qdrant.WalConfigDiff{WalCapacityMb: proto.Uint64(64), WalSegmentsAhead: proto.Uint64(0), WalRetainClosed: proto.Uint64(1)},
		QuantizationConfig: qdrant.NewQuantizationScalar(&qdrant.ScalarQuantization{
			Type: qdrant.QuantizationType_Int8, Quantile: proto.Float32(0.99), AlwaysRam: proto.Bool(true),
		}),
	}
	wantEqual(t, "config", info.GetConfig(), want)
	if info.GetStatus() != qdrant.CollectionStatus_Green || info.GetPointsCount() != 0 || info.IndexedVectorsCount == nil {
		t.Fatalf("status/counts: %s points=%v indexed=%v", info.GetStatus(), info.PointsCount, info.IndexedVectorsCount)
	}
	if info.GetSegmentsCount() != 2 {
		t.Fatalf("segments_count = %d, want default_segment_number 2", info.GetSegmentsCount())
	}

	// The inspection helper sees the same thing.
	got, ok := s.Collection("docs")
	if !ok {
		t.Fatal("Collection(docs) not found")
	}
	wantEqual(t, "Collection() config", got.GetConfig(), want)
}

func TestDefaultsAreQdrants(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	createCollection(t, c, "plain", 4, qdrant.Distance_Dot)
	info, err := c.GetCollectionInfo(ctx(t), "plain")
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.GetConfig()
	wantEqual(t, "hnsw", cfg.GetHnswConfig(), &qdrant.HnswConfigDiff{
		M: proto.Uint64(16), EfConstruct: proto.Uint64(100), FullScanThreshold: proto.Uint64(10000),
		MaxIndexingThreads: proto.Uint64(0), OnDisk: proto.Bool(false),
	})
	wantEqual(t, "optimizers", cfg.GetOptimizerConfig(), &qdrant.OptimizersConfigDiff{
		DeletedThreshold: proto.Float64(0.2), VacuumMinVectorNumber: proto.Uint64(1000), DefaultSegmentNumber: proto.Uint64(0),
		IndexingThreshold: proto.Uint64(10000), FlushIntervalSec: proto.Uint64(5),
		MaxOptimizationThreads: qdrant.NewMaxOptimizationThreadsSetting(qdrant.MaxOptimizationThreads_Auto),
	})
	if !cfg.GetParams().GetOnDiskPayload() || cfg.QuantizationConfig != nil || cfg.StrictModeConfig != nil {
		t.Fatalf("params/quantization/strict defaults: %s", prototext.Format(cfg))
	}
}

func TestQuantizationKindsRoundTrip(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	cases := map[string]*qdrant.QuantizationConfig{
		"product": qdrant.NewQuantizationProduct(&qdrant.ProductQuantization{Compression: qdrant.CompressionRatio_x16, AlwaysRam: proto.Bool(false)}),
		"binary": qdrant.NewQuantizationBinary(&qdrant.BinaryQuantization{
			AlwaysRam: proto.Bool(true), Encoding: qdrant.BinaryQuantizationEncoding_TwoBits.Enum(),
		}),
	}
	for name, q := range cases {
		err := c.CreateCollection(ctx(t), &qdrant.CreateCollection{
			CollectionName:     name,
			VectorsConfig:      qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: 8, Distance: qdrant.Distance_Cosine}),
			QuantizationConfig: q,
		})
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.GetCollectionInfo(ctx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, name, info.GetConfig().GetQuantizationConfig(), q)
	}
}

func TestUpdateMergesHNSWAndReplacesQuantization(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	err := c.CreateCollection(ctx(t), &qdrant.CreateCollection{
		CollectionName: "docs",
		VectorsConfig:  qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: 4, Distance: qdrant.Distance_Cosine}),
		HnswConfig:     &qdrant.HnswConfigDiff{M: proto.Uint64(32), EfConstruct: proto.Uint64(200)},
		QuantizationConfig: qdrant.NewQuantizationScalar(&qdrant.ScalarQuantization{
			Type: qdrant.QuantizationType_Int8, Quantile: proto.Float32(0.99), AlwaysRam: proto.Bool(true),
		}),
	})
	if err != nil {
		t.Fatal(err)
	}

	// HNSW and optimizers diffs merge; the quantization diff replaces the whole block.
	err = c.UpdateCollection(ctx(t), &qdrant.UpdateCollection{
		CollectionName:     "docs",
		HnswConfig:         &qdrant.HnswConfigDiff{EfConstruct: proto.Uint64(400)},
		OptimizersConfig:   &qdrant.OptimizersConfigDiff{IndexingThreshold: proto.Uint64(20000)},
		QuantizationConfig: qdrant.NewQuantizationDiffBinary(&qdrant.BinaryQuantization{AlwaysRam: proto.Bool(false)}),
		Params:             &qdrant.CollectionParamsDiff{OnDiskPayload: proto.Bool(false)},
	})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := c.GetCollectionInfo(ctx(t), "docs")
	cfg := info.GetConfig()
	wantEqual(t, "hnsw", cfg.GetHnswConfig(), &qdrant.HnswConfigDiff{
		M: proto.Uint64(32), EfConstruct: proto.Uint64(400), FullScanThreshold: proto.Uint64(10000),
		MaxIndexingThreads: proto.Uint64(0), OnDisk: proto.Bool(false),
	})
	wantEqual(t, "quantization", cfg.GetQuantizationConfig(), qdrant.NewQuantizationBinary(&qdrant.BinaryQuantization{AlwaysRam: proto.Bool(false)}))
	if cfg.GetOptimizerConfig().GetIndexingThreshold() != 20000 || cfg.GetOptimizerConfig().GetDeletedThreshold() != 0.2 {
		t.Fatalf("optimizers not merged: %s", prototext.Format(cfg.GetOptimizerConfig()))
	}
	if cfg.GetParams().GetOnDiskPayload() {
		t.Fatal("on_disk_payload not updated")
	}

	// Per-vector diff: hnsw merged into the vector's own block, quantization set there.
	err = c.UpdateCollection(ctx(t), &qdrant.UpdateCollection{
		CollectionName: "docs",
		VectorsConfig: qdrant.NewVectorsConfigDiff(&qdrant.VectorParamsDiff{
			HnswConfig: &qdrant.HnswConfigDiff{M: proto.Uint64(8)}, OnDisk: proto.Bool(true),
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	info, _ = c.GetCollectionInfo(ctx(t), "docs")
	vp := info.GetConfig().GetParams().GetVectorsConfig().GetParams()
	if vp.GetHnswConfig().GetM() != 8 || !vp.GetOnDisk() || vp.GetSize() != 4 {
		t.Fatalf("vector params: %s", prototext.Format(vp))
	}

	// Disabled removes quantization altogether.
	err = c.UpdateCollection(ctx(t), &qdrant.UpdateCollection{
		CollectionName:     "docs",
		QuantizationConfig: qdrant.NewQuantizationDiffDisabled(),
	})
	if err != nil {
		t.Fatal(err)
	}
	info, _ = c.GetCollectionInfo(ctx(t), "docs")
	if info.GetConfig().QuantizationConfig != nil {
		t.Fatalf("quantization still set: %s", prototext.Format(info.GetConfig().GetQuantizationConfig()))
	}
	// max_optimization_threads: a number, then back to auto.
	for _, d := range []*qdrant.OptimizersConfigDiff{
		{MaxOptimizationThreads: qdrant.NewMaxOptimizationThreads(4)},
		{MaxOptimizationThreads: qdrant.NewMaxOptimizationThreadsSetting(qdrant.MaxOptimizationThreads_Auto)},
	} {
		if err := c.UpdateCollection(ctx(t), &qdrant.UpdateCollection{CollectionName: "docs", OptimizersConfig: d}); err != nil {
			t.Fatal(err)
		}
		info, _ = c.GetCollectionInfo(ctx(t), "docs")
		wantEqual(t, "max_optimization_threads", info.GetConfig().GetOptimizerConfig().GetMaxOptimizationThreads(), d.MaxOptimizationThreads)
	}
	if info.GetConfig().GetOptimizerConfig().DeprecatedMaxOptimizationThreads != nil {
		t.Fatal("deprecated thread count reported for auto")
	}
}

func TestNotFoundAndAlreadyExists(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")

	_, err := c.GetCollectionInfo(ctx(t), "nope")
	wantStatus(t, err, codes.NotFound, "Not found: Collection `nope` doesn't exist!")
	err = c.UpdateCollection(ctx(t), &qdrant.UpdateCollection{CollectionName: "nope", HnswConfig: &qdrant.HnswConfigDiff{M: proto.Uint64(8)}})
	wantStatus(t, err, codes.NotFound, "Not found: Collection `nope` doesn't exist!")
	_, err = c.Upsert(ctx(t), &qdrant.UpsertPoints{CollectionName: "nope", Points: []*qdrant.PointStruct{pt(1, nil, 1, 0)}})
	wantStatus(t, err, codes.NotFound, "Not found: Collection `nope` doesn't exist!")
	_, err = c.Query(ctx(t), &qdrant.QueryPoints{CollectionName: "nope", Query: qdrant.NewQuery(1, 0)})
	wantStatus(t, err, codes.NotFound, "Not found: Collection `nope` doesn't exist!")
	if ok, err := c.CollectionExists(ctx(t), "nope"); err != nil || ok {
		t.Fatalf("CollectionExists = %v, %v", ok, err)
	}
	// Deleting a missing collection is result=false, not a gRPC error; the client makes it one.
	resp, err := c.GetCollectionsClient().Delete(ctx(t), &qdrant.DeleteCollection{CollectionName: "nope"})
	if err != nil || resp.GetResult() {
		t.Fatalf("Delete(missing) = %v, %v", resp.GetResult(), err)
	}
	if err := c.DeleteCollection(ctx(t), "nope"); err == nil {
		t.Fatal("client DeleteCollection(missing) should fail")
	}

	createCollection(t, c, "docs", 2, qdrant.Distance_Cosine)
	err = c.CreateCollection(ctx(t), &qdrant.CreateCollection{
		CollectionName: "docs",
		VectorsConfig:  qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: 2, Distance: qdrant.Distance_Cosine}),
	})
	wantStatus(t, err, codes.AlreadyExists, "Wrong input: Collection `docs` already exists!")

	names, err := c.ListCollections(ctx(t))
	if err != nil || len(names) != 1 || names[0] != "docs" {
		t.Fatalf("ListCollections = %v, %v", names, err)
	}
	if err := c.DeleteCollection(ctx(t), "docs"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.CollectionExists(ctx(t), "docs"); ok {
		t.Fatal("collection survived Delete")
	}

	err = c.CreateCollection(ctx(t), &qdrant.CreateCollection{
		CollectionName: "zero",
		VectorsConfig:  qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: 0, Distance: qdrant.Distance_Cosine}),
	})
	wantStatus(t, err, codes.InvalidArgument, "VectorParams size must be greater than zero")
}

func TestWrongVectorSize(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	createCollection(t, c, "docs", 4, qdrant.Distance_Cosine)

	// One bad point fails the whole batch, and nothing is written.
	_, err := c.Upsert(ctx(t), &qdrant.UpsertPoints{CollectionName: "docs", Points: []*qdrant.PointStruct{
		pt(1, nil, 1, 0, 0, 0),
		pt(2, nil, 1, 0, 0),
	}})
	wantStatus(t, err, codes.InvalidArgument, "Wrong input: Vector dimension error: expected dim: 4, got 3")
	if n := s.Points("docs"); n != 0 {
		t.Fatalf("%d points written by a failed batch", n)
	}

	_, err = c.GetPointsClient().Search(ctx(t), &qdrant.SearchPoints{CollectionName: "docs", Vector: []float32{1, 0}, Limit: 3})
	wantStatus(t, err, codes.InvalidArgument, "Wrong input: Vector dimension error: expected dim: 4, got 2")
	_, err = c.Query(ctx(t), &qdrant.QueryPoints{CollectionName: "docs", Query: qdrant.NewQuery(1, 0, 0, 0, 0)})
	wantStatus(t, err, codes.InvalidArgument, "Wrong input: Vector dimension error: expected dim: 4, got 5")

	_, err = c.Upsert(ctx(t), &qdrant.UpsertPoints{CollectionName: "docs", Points: []*qdrant.PointStruct{{Id: qdrant.NewIDNum(1)}}})
	wantStatus(t, err, codes.InvalidArgument, "Expected some vectors")
	_, err = c.Upsert(ctx(t), &qdrant.UpsertPoints{CollectionName: "docs", Points: []*qdrant.PointStruct{
		{Id: qdrant.NewID("not-a-uuid"), Vectors: qdrant.NewVectors(1, 0, 0, 0)},
	}})
	wantStatus(t, err, codes.InvalidArgument, "Unable to parse UUID: not-a-uuid")
}

func TestCosineSearchOrderingAndThreshold(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	createCollection(t, c, "docs", 2, qdrant.Distance_Cosine)
	upsert(t, c, "docs",
		pt(1, map[string]any{"name": "east"}, 10, 0),     // angle 0
		pt(2, map[string]any{"name": "northeast"}, 3, 3), // 45°
		pt(3, map[string]any{"name": "north"}, 0, 0.5),   // 90°
		pt(4, map[string]any{"name": "west"}, -2, 0),     // 180°
	)

	// Stored vectors are normalised, as Qdrant does for Cosine.
	got, err := c.Get(ctx(t), &qdrant.GetPoints{CollectionName: "docs", Ids: []*qdrant.PointId{qdrant.NewIDNum(1)}, WithVectors: qdrant.NewWithVectors(true)})
	if err != nil || len(got) != 1 {
		t.Fatalf("Get: %v, %v", got, err)
	}
	if v := got[0].GetVectors().GetVector().GetDenseVector().GetData(); len(v) != 2 || v[0] != 1 || v[1] != 0 {
		t.Fatalf("stored vector %v, want [1 0]", v)
	}
	if len(got[0].GetPayload()) != 0 {
		t.Fatal("Get returned payload without with_payload")
	}

	res, err := c.GetPointsClient().Search(ctx(t), &qdrant.SearchPoints{
		CollectionName: "docs", Vector: []float32{5, 0}, Limit: 10,
		WithPayload: qdrant.NewWithPayload(true), Params: &qdrant.SearchParams{HnswEf: proto.Uint64(128)},
	})
	if err != nil {
		t.Fatal(err)
	}
	hits := res.GetResult()
	if got := strings.Join(ids(t, hits), ","); got != "1,2,3,4" {
		t.Fatalf("order %s", got)
	}
	wantScores := []float32{1, float32(math.Sqrt2 / 2), 0, -1}
	for i, h := range hits {
		if math.Abs(float64(h.GetScore()-wantScores[i])) > 1e-6 {
			t.Fatalf("hit %d score %v, want %v", i, h.GetScore(), wantScores[i])
		}
	}
	if hits[0].GetPayload()["name"].GetStringValue() != "east" {
		t.Fatalf("payload %v", hits[0].GetPayload())
	}

	// The Query API gives the same ranking; score_threshold cuts below 0.5.
	q, err := c.Query(ctx(t), &qdrant.QueryPoints{
		CollectionName: "docs", Query: qdrant.NewQuery(5, 0), ScoreThreshold: proto.Float32(0.5),
		Params: &qdrant.SearchParams{HnswEf: proto.Uint64(64)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids(t, q), ","); got != "1,2" {
		t.Fatalf("query with threshold: %s", got)
	}
	if len(q[0].GetPayload()) != 0 {
		t.Fatal("Query returned payload without with_payload")
	}

	// Query by id: nearest to point 2, which is itself left out.
	q, err = c.Query(ctx(t), &qdrant.QueryPoints{CollectionName: "docs", Query: qdrant.NewQueryID(qdrant.NewIDNum(2)), Limit: proto.Uint64(2)})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids(t, q), ","); got != "1,3" && got != "3,1" {
		t.Fatalf("query by id: %s", got)
	}
}

func TestDotAndEuclidOrdering(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	createCollection(t, c, "dot", 2, qdrant.Distance_Dot)
	createCollection(t, c, "euclid", 2, qdrant.Distance_Euclid)
	for _, name := range []string{"dot", "euclid"} {
		upsert(t, c, name, pt(1, nil, 1, 0), pt(2, nil, 10, 0), pt(3, nil, 4, 0))
	}

	dot, err := c.Query(ctx(t), &qdrant.QueryPoints{CollectionName: "dot", Query: qdrant.NewQuery(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids(t, dot), ","); got != "2,3,1" || dot[0].GetScore() != 10 {
		t.Fatalf("dot: %s score %v", got, dot[0].GetScore())
	}

	// Euclid: the score is the distance and smaller comes first; the threshold is a max distance.
	eu, err := c.Query(ctx(t), &qdrant.QueryPoints{CollectionName: "euclid", Query: qdrant.NewQuery(3, 0), ScoreThreshold: proto.Float32(2.5)})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids(t, eu), ","); got != "3,1" {
		t.Fatalf("euclid: %s", got)
	}
	if eu[0].GetScore() != 1 || eu[1].GetScore() != 2 {
		t.Fatalf("euclid scores %v %v", eu[0].GetScore(), eu[1].GetScore())
	}
}

// ragPoints is a small corpus shaped like the RAG server's chunks.
func ragPoints() []*qdrant.PointStruct {
	return []*qdrant.PointStruct{
		pt(1, map[string]any{"document_id": "a", "chunk_index": 0, "tags": []any{"hr", "policy"}, "meta": map[string]any{"lang": "en"}}, 1, 0),
		pt(2, map[string]any{"document_id": "a", "chunk_index": 1, "tags": []any{"hr"}, "meta": map[string]any{"lang": "de"}}, 0.9, 0.1),
		pt(3, map[string]any{"document_id": "b", "chunk_index": 0, "tags": []any{"finance"}, "score": 0.7}, 0, 1),
		pt(4, map[string]any{"document_id": "c", "chunk_index": 0, "tags": []any{}}, -1, 0),
	}
}

func scrollIDs(t *testing.T, c *qdrant.Client, f *qdrant.Filter) string {
	t.Helper()
	res, err := c.Scroll(ctx(t), &qdrant.ScrollPoints{CollectionName: "docs", Filter: f, Limit: proto.Uint32(100)})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(ids(t, res), ",")
}

func TestFilters(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	createCollection(t, c, "docs", 2, qdrant.Distance_Cosine)
	upsert(t, c, "docs", ragPoints()...)

	cases := []struct {
		name   string
		filter *qdrant.Filter
		want   string
	}{
		{"keyword", &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatch("document_id", "a")}}, "1,2"},
		{"keyword in array", &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatch("tags", "policy")}}, "1"},
		{"any", &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatchKeywords("tags", "policy", "finance")}}, "1,3"},
		{"integer", &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatchInt("chunk_index", 1)}}, "2"},
		{"must_not", &qdrant.Filter{MustNot: []*qdrant.Condition{qdrant.NewMatch("document_id", "a")}}, "3,4"},
		{"should", &qdrant.Filter{Should: []*qdrant.Condition{qdrant.NewMatch("document_id", "b"), qdrant.NewMatch("document_id", "c")}}, "3,4"},
		{"has_id", &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewHasID(qdrant.NewIDNum(2), qdrant.NewIDNum(4))}}, "2,4"},
		{"has_id and must_not", &qdrant.Filter{
			Must:    []*qdrant.Condition{qdrant.NewHasID(qdrant.NewIDNum(1), qdrant.NewIDNum(2))},
			MustNot: []*qdrant.Condition{qdrant.NewMatchInt("chunk_index", 0)},
		}, "2"},
		{"nested key", &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatch("meta.lang", "de")}}, "2"},
		{"is_empty", &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewIsEmpty("tags")}}, "4"},
		{"is_empty missing", &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewIsEmpty("score")}}, "1,2,4"},
		{"range", &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewRange("score", &qdrant.Range{Gte: proto.Float64(0.5)})}}, "3"},
		{"integer does not match keyword", &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatch("chunk_index", "0")}}, ""},
		{"nested filter", &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewFilterAsCondition(&qdrant.Filter{
			Should: []*qdrant.Condition{qdrant.NewMatch("tags", "finance"), qdrant.NewMatchInt("chunk_index", 1)},
		})}}, "2,3"},
	}
	for _, tc := range cases {
		if got := scrollIDs(t, c, tc.filter); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}

	// The same filter applies to search and count.
	f := &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatchKeywords("tags", "hr", "finance")}}
	q, err := c.Query(ctx(t), &qdrant.QueryPoints{CollectionName: "docs", Query: qdrant.NewQuery(0, 1), Filter: f, WithPayload: qdrant.NewWithPayloadInclude("document_id")})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids(t, q), ","); got != "3,2,1" {
		t.Fatalf("filtered query: %s", got)
	}
	if p := q[0].GetPayload(); len(p) != 1 || p["document_id"].GetStringValue() != "b" {
		t.Fatalf("payload include: %v", p)
	}
	n, err := c.Count(ctx(t), &qdrant.CountPoints{CollectionName: "docs", Filter: f, Exact: proto.Bool(true)})
	if err != nil || n != 3 {
		t.Fatalf("Count = %d, %v", n, err)
	}

	// Unsupported conditions fail loudly rather than match wrongly.
	_, err = c.Count(ctx(t), &qdrant.CountPoints{CollectionName: "docs", Filter: &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatchText("document_id", "a")}}})
	wantStatus(t, err, codes.Unimplemented, "")
}

func TestDeleteByFilterAndIDsAndCount(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	createCollection(t, c, "docs", 2, qdrant.Distance_Cosine)
	upsert(t, c, "docs", ragPoints()...)

	n, err := c.Count(ctx(t), &qdrant.CountPoints{CollectionName: "docs"})
	if err != nil || n != 4 {
		t.Fatalf("Count = %d, %v", n, err)
	}
	res, err := c.Delete(ctx(t), &qdrant.DeletePoints{
		CollectionName: "docs", Wait: proto.Bool(true),
		Points: qdrant.NewPointsSelectorFilter(&qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatch("document_id", "a")}}),
	})
	if err != nil || res.GetStatus() != qdrant.UpdateStatus_Completed {
		t.Fatalf("Delete by filter: %v, %v", res, err)
	}
	if got := scrollIDs(t, c, nil); got != "3,4" {
		t.Fatalf("after delete by filter: %s", got)
	}
	// Deleting ids that are not there is fine.
	if _, err := c.Delete(ctx(t), &qdrant.DeletePoints{CollectionName: "docs", Points: qdrant.NewPointsSelector(qdrant.NewIDNum(3), qdrant.NewIDNum(99))}); err != nil {
		t.Fatal(err)
	}
	if s.Points("docs") != 1 {
		t.Fatalf("points left: %d", s.Points("docs"))
	}
	info, _ := s.Collection("docs")
	if info.GetPointsCount() != 1 {
		t.Fatalf("points_count %d", info.GetPointsCount())
	}
	_, err = c.GetPointsClient().Delete(ctx(t), &qdrant.DeletePoints{CollectionName: "docs"})
	wantStatus(t, err, codes.InvalidArgument, "PointSelector is missing")
}

func TestPayloadUpdates(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	createCollection(t, c, "docs", 2, qdrant.Distance_Cosine)
	upsert(t, c, "docs", ragPoints()...)

	// Tag update without re-embedding: set merges keys, the vector stays.
	_, err := c.SetPayload(ctx(t), &qdrant.SetPayloadPoints{
		CollectionName: "docs", Wait: proto.Bool(true),
		Payload:        qdrant.NewValueMap(map[string]any{"tags": []any{"archived"}}),
		PointsSelector: qdrant.NewPointsSelectorFilter(&qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatch("document_id", "a")}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := c.Get(ctx(t), &qdrant.GetPoints{CollectionName: "docs", Ids: []*qdrant.PointId{qdrant.NewIDNum(1)}, WithPayload: qdrant.NewWithPayload(true), WithVectors: qdrant.NewWithVectors(true)})
	p := got[0].GetPayload()
	if p["document_id"].GetStringValue() != "a" || p["tags"].GetListValue().GetValues()[0].GetStringValue() != "archived" || len(p["tags"].GetListValue().GetValues()) != 1 {
		t.Fatalf("after set: %v", p)
	}
	if got[0].GetVectors().GetVector().GetDenseVector() == nil {
		t.Fatal("vector lost")
	}
	if scrollIDs(t, c, &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewMatch("tags", "archived")}}) != "1,2" {
		t.Fatal("filter does not see new tags")
	}

	// Overwrite replaces the whole payload; delete removes keys.
	if _, err := c.OverwritePayload(ctx(t), &qdrant.SetPayloadPoints{
		CollectionName: "docs", Payload: qdrant.NewValueMap(map[string]any{"only": true, "n": 1.5}),
		PointsSelector: qdrant.NewPointsSelector(qdrant.NewIDNum(3)),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeletePayload(ctx(t), &qdrant.DeletePayloadPoints{
		CollectionName: "docs", Keys: []string{"only"}, PointsSelector: qdrant.NewPointsSelector(qdrant.NewIDNum(3)),
	}); err != nil {
		t.Fatal(err)
	}
	got, _ = c.Get(ctx(t), &qdrant.GetPoints{CollectionName: "docs", Ids: []*qdrant.PointId{qdrant.NewIDNum(3)}, WithPayload: qdrant.NewWithPayload(true)})
	if p := got[0].GetPayload(); len(p) != 1 || p["n"].GetDoubleValue() != 1.5 {
		t.Fatalf("after overwrite+delete: %v", p)
	}

	// With `key`, the keys land in the object at that path, created if missing.
	if _, err := c.SetPayload(ctx(t), &qdrant.SetPayloadPoints{
		CollectionName: "docs", Key: proto.String("meta.source"), Payload: qdrant.NewValueMap(map[string]any{"page": 3}),
		PointsSelector: qdrant.NewPointsSelector(qdrant.NewIDNum(1)),
	}); err != nil {
		t.Fatal(err)
	}
	if got := scrollIDs(t, c, &qdrant.Filter{Must: []*qdrant.Condition{
		qdrant.NewMatchInt("meta.source.page", 3), qdrant.NewMatch("meta.lang", "en"),
	}}); got != "1" {
		t.Fatalf("nested set_payload: %q", got)
	}

	// A missing id is an error for payload writes.
	_, err = c.SetPayload(ctx(t), &qdrant.SetPayloadPoints{
		CollectionName: "docs", Payload: qdrant.NewValueMap(map[string]any{"x": 1}),
		PointsSelector: qdrant.NewPointsSelector(qdrant.NewIDNum(42)),
	})
	wantStatus(t, err, codes.NotFound, "Not found: No point with id 42 found")
}

func TestIDsScrollPagingAndPayloadTypes(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	createCollection(t, c, "docs", 2, qdrant.Distance_Cosine)
	const u = "6BA7B810-9DAD-11D1-80B4-00C04FD430C8"
	payload := map[string]any{"s": "x", "i": 7, "f": 2.5, "b": true, "l": []any{1, "two"}, "o": map[string]any{"k": nil}}
	upsert(t, c, "docs",
		&qdrant.PointStruct{Id: qdrant.NewID(u), Vectors: qdrant.NewVectors(1, 1), Payload: qdrant.NewValueMap(payload)},
		pt(10, nil, 1, 0), pt(2, nil, 0, 1), pt(7, nil, 1, 1),
	)

	var pages [][]string
	var offset *qdrant.PointId
	for {
		pts, next, err := c.ScrollAndOffset(ctx(t), &qdrant.ScrollPoints{CollectionName: "docs", Limit: proto.Uint32(3), Offset: offset})
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, ids(t, pts))
		if next == nil {
			break
		}
		offset = next
	}
	want := [][]string{{"2", "7", "10"}, {strings.ToLower(u)}}
	if len(pages) != 2 || strings.Join(pages[0], ",") != strings.Join(want[0], ",") || strings.Join(pages[1], ",") != want[1][0] {
		t.Fatalf("pages %v, want %v", pages, want)
	}

	// Scroll returns payload by default, with types intact.
	pts, _ := c.Scroll(ctx(t), &qdrant.ScrollPoints{CollectionName: "docs", Filter: &qdrant.Filter{Must: []*qdrant.Condition{qdrant.NewHasID(qdrant.NewID(strings.ToLower(u)))}}})
	wantEqual(t, "payload", &qdrant.Struct{Fields: pts[0].GetPayload()}, &qdrant.Struct{Fields: qdrant.NewValueMap(payload)})
}

func TestAPIKeyRequired(t *testing.T) {
	s := Start(t, WithAPIKey("secret"))

	_, err := newClient(t, s, "").ListCollections(ctx(t))
	wantStatus(t, err, codes.Unauthenticated, "Must provide an API key or an Authorization bearer token")
	_, err = newClient(t, s, "wrong").ListCollections(ctx(t))
	wantStatus(t, err, codes.Unauthenticated, "Invalid API key or JWT")

	if _, err := newClient(t, s, "").HealthCheck(ctx(t)); err != nil {
		t.Fatalf("health check must not need the key: %v", err)
	}
	c := newClient(t, s, "secret")
	createCollection(t, c, "docs", 2, qdrant.Distance_Cosine)
	if names, err := c.ListCollections(ctx(t)); err != nil || len(names) != 1 {
		t.Fatalf("with key: %v, %v", names, err)
	}
}

func TestFaultInjection(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	s := Start(t, WithFault(func(method string) error {
		if fail.Load() && method == qdrant.Points_Upsert_FullMethodName {
			return status.Error(codes.Unavailable, "injected")
		}
		return nil
	}))
	c := newClient(t, s, "")
	createCollection(t, c, "docs", 2, qdrant.Distance_Cosine)

	_, err := c.Upsert(ctx(t), &qdrant.UpsertPoints{CollectionName: "docs", Points: []*qdrant.PointStruct{pt(1, nil, 1, 0)}})
	wantStatus(t, err, codes.Unavailable, "injected")
	if s.Points("docs") != 0 {
		t.Fatal("a faulted call must not run")
	}
	fail.Store(false)
	upsert(t, c, "docs", pt(1, nil, 1, 0))

	if n := s.Calls(qdrant.Points_Upsert_FullMethodName); n != 2 {
		t.Fatalf("Calls(full name) = %d", n)
	}
	if n := s.Calls("Points/Upsert"); n != 2 {
		t.Fatalf("Calls(short name) = %d", n)
	}
	if n := s.Calls("Collections/Create"); n != 1 {
		t.Fatalf("Calls(Collections/Create) = %d", n)
	}

	s.SetFault(func(string) error { return status.Error(codes.ResourceExhausted, "slow down") })
	_, err = c.Count(ctx(t), &qdrant.CountPoints{CollectionName: "docs"})
	wantStatus(t, err, codes.ResourceExhausted, "slow down")
	s.SetFault(nil)
	if _, err := c.Count(ctx(t), &qdrant.CountPoints{CollectionName: "docs"}); err != nil {
		t.Fatal(err)
	}
}

func TestRestartKeepsData(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	createCollection(t, c, "docs", 2, qdrant.Distance_Cosine)
	upsert(t, c, "docs", ragPoints()...)
	host, port := s.Addr()

	s.Stop()
	_, err := c.Count(ctx(t), &qdrant.CountPoints{CollectionName: "docs"})
	wantStatus(t, err, codes.Unavailable, "")

	s.Restart()
	if h, p := s.Addr(); h != host || p != port {
		t.Fatalf("restarted on %s:%d, was %s:%d", h, p, host, port)
	}
	// The same client reconnects by itself. Like against a restarted Qdrant, each pooled
	// connection may fail a call with Unavailable until its reconnect backoff has run out.
	eventually(t, func() error {
		n, err := c.Count(ctx(t), &qdrant.CountPoints{CollectionName: "docs"})
		if err == nil && n != 4 {
			t.Fatalf("after restart: %d points", n)
		}
		return err
	})
	eventually(t, func() error {
		info, err := c.GetCollectionInfo(ctx(t), "docs")
		if err == nil && info.GetConfig().GetParams().GetVectorsConfig().GetParams().GetSize() != 2 {
			t.Fatalf("config after restart: %s", prototext.Format(info.GetConfig()))
		}
		return err
	})
}

// eventually retries fn until it succeeds several times in a row (every pooled connection has
// come back), or fails the test after a deadline.
func eventually(t *testing.T, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for ok := 0; ok < 6; {
		if err := fn(); err != nil {
			ok = 0
			if time.Now().After(deadline) {
				t.Fatalf("still failing: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		ok++
	}
}

func TestUnimplementedIsLoud(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	createCollection(t, c, "docs", 2, qdrant.Distance_Cosine)

	err := c.CreateAlias(ctx(t), "alias", "docs")
	wantStatus(t, err, codes.Unimplemented, "")
	_, err = c.Query(ctx(t), &qdrant.QueryPoints{
		CollectionName: "docs", Query: qdrant.NewQuery(1, 0),
		Prefetch: []*qdrant.PrefetchQuery{{Query: qdrant.NewQuery(1, 0)}},
	})
	wantStatus(t, err, codes.Unimplemented, "")
	err = c.CreateCollection(ctx(t), &qdrant.CreateCollection{
		CollectionName: "named",
		VectorsConfig:  qdrant.NewVectorsConfigMap(map[string]*qdrant.VectorParams{"dense": {Size: 2, Distance: qdrant.Distance_Cosine}}),
	})
	wantStatus(t, err, codes.Unimplemented, "")
}

func TestPayloadIndexShowsInSchema(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	createCollection(t, c, "docs", 2, qdrant.Distance_Cosine)
	upsert(t, c, "docs", ragPoints()...)
	_, err := c.CreateFieldIndex(ctx(t), &qdrant.CreateFieldIndexCollection{
		CollectionName: "docs", FieldName: "document_id", FieldType: qdrant.FieldType_FieldTypeKeyword.Enum(), Wait: proto.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := c.GetCollectionInfo(ctx(t), "docs")
	sch := info.GetPayloadSchema()["document_id"]
	if sch.GetDataType() != qdrant.PayloadSchemaType_Keyword || sch.GetPoints() != 4 {
		t.Fatalf("payload schema: %v", info.GetPayloadSchema())
	}
	keys := make([]string, 0, len(info.GetPayloadSchema()))
	for k := range info.GetPayloadSchema() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "document_id" {
		t.Fatalf("schema keys %v", keys)
	}
}

// TestReadOnlyKey: the read-only key reads and is refused writes; the full key does both.
func TestReadOnlyKey(t *testing.T) {
	s := Start(t, WithAPIKey("rw"), WithReadOnlyAPIKey("ro"))
	rw, ro := newClient(t, s, "rw"), newClient(t, s, "ro")
	ctx := context.Background()
	if err := rw.CreateCollection(ctx, &qdrant.CreateCollection{CollectionName: "c",
		VectorsConfig: qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: 2, Distance: qdrant.Distance_Cosine})}); err != nil {
		t.Fatal(err)
	}
	if _, err := ro.GetCollectionInfo(ctx, "c"); err != nil {
		t.Fatalf("read with the read-only key: %v", err)
	}
	if _, err := ro.Count(ctx, &qdrant.CountPoints{CollectionName: "c"}); err != nil {
		t.Fatalf("count with the read-only key: %v", err)
	}
	_, err := ro.Upsert(ctx, &qdrant.UpsertPoints{CollectionName: "c", Points: []*qdrant.PointStruct{{Id: qdrant.NewIDNum(1), Vectors: qdrant.NewVectors(1, 0)}}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("upsert with the read-only key: %v, want PermissionDenied", err)
	}
	if err := ro.DeleteCollection(ctx, "c"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("delete with the read-only key: %v, want PermissionDenied", err)
	}
	if _, err := newClient(t, s, "nope").GetCollectionInfo(ctx, "c"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong key: %v", err)
	}
}
