package controllers

import (
	"context"
	"strings"
	"testing"

	"github.com/qdrant/go-client/qdrant"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/internal/testbed/qdrantdouble"
)

func qdrantClient(t *testing.T, srv *qdrantdouble.Server, apiKey string) *qdrant.Client {
	t.Helper()
	host, port := srv.Addr()
	c, err := qdrant.NewClient(&qdrant.Config{Host: host, Port: port, APIKey: apiKey, SkipCompatibilityCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func guideCollection(t *testing.T) ragv1.CollectionSpec {
	return loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml").Spec.Qdrant.Collection
}

// Against the Qdrant double, through the real go-client.
func TestCollectionCreatedThenUpdatedInPlace(t *testing.T) {
	srv := qdrantdouble.Start(t)
	qc := qdrantClient(t, srv, "")
	ctx := context.Background()
	spec := guideCollection(t)

	st, info, err := ensureCollection(ctx, qc, spec, nil)
	if err != nil || st.Reason != ragv1.ReasonCollectionConfigured || !strings.Contains(st.Message, "created") {
		t.Fatalf("create: %v %+v", err, st)
	}
	got := collectionStatus(spec.Name, info)
	want := ragv1.CollectionStatus{Name: "documents", Status: "Green", VectorSize: 768, Distance: "Cosine", HNSWM: 16, HNSWEfConstruct: 200,
		Quantization: "scalar-int8-always-ram", IndexingThreshold: 50000, DefaultSegmentNumber: 2, MemmapThreshold: 200000,
		ShardNumber: 1, ReplicationFactor: 1, WriteConsistencyFactor: 1}
	if *got != want {
		t.Fatalf("applied config as Qdrant reports it:\n got %+v\nwant %+v", *got, want)
	}

	// Unchanged spec: no update sent.
	updates := srv.Calls("Collections/Update")
	if st, _, err := ensureCollection(ctx, qc, spec, nil); err != nil || !strings.Contains(st.Message, "matches") || srv.Calls("Collections/Update") != updates {
		t.Fatalf("steady state: %v %+v, updates %d→%d", err, st, updates, srv.Calls("Collections/Update"))
	}

	// HNSW and optimizers merge in place.
	spec.HNSW.EfConstruct = 400
	spec.Optimizers.IndexingThreshold = 0 // the bulk-load setting
	st, info, err = ensureCollection(ctx, qc, spec, nil)
	if err != nil || !strings.Contains(st.Message, "hnsw.efConstruct 200→400") {
		t.Fatalf("update: %v %+v", err, st)
	}
	got = collectionStatus(spec.Name, info)
	if got.HNSWEfConstruct != 400 || got.HNSWM != 16 || got.IndexingThreshold != 0 || got.MemmapThreshold != 200000 {
		t.Fatalf("merge lost a field: %+v", got)
	}

	// Quantization is replaced whole, and can be disabled.
	spec.Quantization.AlwaysRAM = false
	if _, info, err = ensureCollection(ctx, qc, spec, nil); err != nil || collectionStatus(spec.Name, info).Quantization != "scalar-int8" {
		t.Fatalf("always_ram off: %v %+v", err, collectionStatus(spec.Name, info))
	}
	spec.Quantization.Type = ragv1.QuantizationNone
	if _, info, err = ensureCollection(ctx, qc, spec, nil); err != nil || collectionStatus(spec.Name, info).Quantization != "none" {
		t.Fatalf("disable: %v %+v", err, collectionStatus(spec.Name, info))
	}
}

func TestConflictingCollectionIsNeverTouched(t *testing.T) {
	srv := qdrantdouble.Start(t)
	qc := qdrantClient(t, srv, "")
	ctx := context.Background()
	if err := qc.CreateCollection(ctx, &qdrant.CreateCollection{CollectionName: "documents",
		VectorsConfig: qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: 384, Distance: qdrant.Distance_Dot})}); err != nil {
		t.Fatal(err)
	}
	before := srv.Calls("Collections/Update") + srv.Calls("Collections/Delete") + srv.Calls("Collections/Create")
	st, _, err := ensureCollection(ctx, qc, guideCollection(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Reason != ragv1.ReasonCollectionConflict || !strings.Contains(st.Message, "vectorSize 384 and distance Dot") || !strings.Contains(st.Message, "vectorSize 768 and distance Cosine") {
		t.Fatalf("want a conflict naming both values, got %+v", st)
	}
	if after := srv.Calls("Collections/Update") + srv.Calls("Collections/Delete") + srv.Calls("Collections/Create"); after != before {
		t.Fatal("a conflicting collection was written to")
	}
}

func TestCollectionWithAPIKeyAndUnreachable(t *testing.T) {
	srv := qdrantdouble.Start(t, qdrantdouble.WithAPIKey("s3cret"))
	ctx := context.Background()
	if _, _, err := ensureCollection(ctx, qdrantClient(t, srv, "wrong"), guideCollection(t), nil); err == nil {
		t.Fatal("a wrong API key must be an error")
	}
	if _, _, err := ensureCollection(ctx, qdrantClient(t, srv, "s3cret"), guideCollection(t), nil); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, _, err := ensureCollection(ctx, qdrantClient(t, srv, "s3cret"), guideCollection(t), nil); err == nil {
		t.Fatal("a stopped Qdrant must be an error")
	}
}

// TestBulkIngestWindow: against the Qdrant double, HNSW indexing is deferred while the RAG
// server's backlog is large and restored once it drains; an operator restarted mid-window (no
// memory of it) closes it from what Qdrant reports.
func TestBulkIngestWindow(t *testing.T) {
	srv := qdrantdouble.Start(t)
	qc := qdrantClient(t, srv, "")
	ctx := context.Background()
	spec := guideCollection(t)
	spec.Optimizers.BulkIngestThreshold = 100
	backlog := func(n float64) *float64 { return &n }
	threshold := func(st state, info *qdrant.CollectionInfo) uint64 {
		t.Helper()
		return info.GetConfig().GetOptimizerConfig().GetIndexingThreshold()
	}
	step := func(name string, queued *float64, want uint64, inMessage string) {
		t.Helper()
		st, info, err := ensureCollection(ctx, qc, spec, queued)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := threshold(st, info); got != want || !strings.Contains(st.Message, inMessage) {
			t.Fatalf("%s: indexing threshold %d (want %d), condition %q (want it to mention %q)", name, got, want, st.Message, inMessage)
		}
	}
	step("created", backlog(0), 50000, "created")
	step("small backlog", backlog(20), 50000, "matches")
	step("bulk upload starts", backlog(150), 0, "indexingThreshold 50000→0; bulk-ingest window: HNSW indexing deferred while 150 documents")
	step("draining, still open", backlog(20), 0, "deferred while 20 documents")
	step("metrics unreadable: unchanged", nil, 0, "deferred while an unknown number of documents")
	// A new operator process (nothing kept in memory) sees the window in Qdrant's settings.
	step("drained", backlog(0), 50000, "indexingThreshold 0→50000")
	step("closed, metrics unreadable: stays closed", nil, 50000, "matches")
	updates := srv.Calls("Collections/Update")
	step("steady", backlog(3), 50000, "matches")
	if srv.Calls("Collections/Update") != updates {
		t.Fatal("a steady backlog below the threshold sent an update")
	}
	// Declared threshold 0 (indexing off by choice): the window never touches it.
	spec.Optimizers.IndexingThreshold = 0
	step("indexing off by spec", backlog(500), 0, "indexingThreshold 50000→0")
	step("indexing off by spec, drained", backlog(0), 0, "matches")
}

// TestCollectionSharding: against the Qdrant double (which validates and reports sharding as
// Qdrant does), the declared sharding is set at creation, replication and write consistency
// are updated in place, and a shard number Qdrant fixed otherwise is reported, not fought.
func TestCollectionSharding(t *testing.T) {
	srv := qdrantdouble.Start(t)
	qc := qdrantClient(t, srv, "")
	ctx := context.Background()
	spec := guideCollection(t)
	spec.ShardNumber = ptr.To[int32](6)
	spec.ReplicationFactor, spec.WriteConsistencyFactor = 2, 1
	st, info, err := ensureCollection(ctx, qc, spec, nil)
	if err != nil || !strings.Contains(st.Message, "created") {
		t.Fatalf("create: %v %+v", err, st)
	}
	if got := collectionStatus(spec.Name, info); got.ShardNumber != 6 || got.ReplicationFactor != 2 || got.WriteConsistencyFactor != 1 {
		t.Fatalf("created with %d shards ×%d (write %d), want 6 ×2 (write 1)", got.ShardNumber, got.ReplicationFactor, got.WriteConsistencyFactor)
	}
	spec.ReplicationFactor, spec.WriteConsistencyFactor = 3, 2
	st, info, err = ensureCollection(ctx, qc, spec, nil)
	if err != nil || !strings.Contains(st.Message, "replicationFactor 2→3") || !strings.Contains(st.Message, "writeConsistencyFactor 1→2") {
		t.Fatalf("update: %v %+v", err, st)
	}
	if got := collectionStatus(spec.Name, info); got.ReplicationFactor != 3 || got.WriteConsistencyFactor != 2 || got.ShardNumber != 6 {
		t.Fatalf("after update: %+v", got)
	}
	// A shard number that differs from the existing collection's is reported; nothing is sent.
	spec.ShardNumber = ptr.To[int32](3)
	updates := srv.Calls("Collections/Update")
	st, _, err = ensureCollection(ctx, qc, spec, nil)
	if err != nil || st.Reason != ragv1.ReasonShardingDiffers || string(st.Status) != "True" || !strings.Contains(st.Message, "has 6 shards") || !strings.Contains(st.Message, "says 3") {
		t.Fatalf("differing shard number: %v %+v", err, st)
	}
	if srv.Calls("Collections/Update") != updates {
		t.Fatal("a differing shard number sent an update")
	}
}
