package qdrantdouble

import (
	"testing"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// The collection's sharding (shard_number, replication_factor, write_consistency_factor), as the
// operator's collection reconciler sets it at creation and compares it later.

func shardingOf(t *testing.T, c *qdrant.Client, name string) (shards, replication, writeConsistency uint32) {
	t.Helper()
	info, err := c.GetCollectionInfo(ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	p := info.GetConfig().GetParams()
	if p.ReplicationFactor == nil || p.WriteConsistencyFactor == nil {
		t.Fatalf("replication_factor or write_consistency_factor not reported: %v", p)
	}
	return p.GetShardNumber(), p.GetReplicationFactor(), p.GetWriteConsistencyFactor()
}

func TestShardingSetAtCreationAndReported(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	vectors := qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: 4, Distance: qdrant.Distance_Cosine})

	// Left out: Qdrant's defaults on one node, 1/1/1.
	createCollection(t, c, "plain", 4, qdrant.Distance_Cosine)
	if s, r, w := shardingOf(t, c, "plain"); s != 1 || r != 1 || w != 1 {
		t.Fatalf("defaults: shards %d replication %d write consistency %d, want 1/1/1", s, r, w)
	}

	// Set: kept as given, write consistency above replication included (Qdrant accepts it and
	// waits for min(write_consistency_factor, replicas) at write time).
	for _, tc := range []struct {
		name    string
		s, r, w uint32
	}{{"three-shards", 3, 2, 1}, {"replicated", 6, 3, 2}, {"wcf-over-rf", 2, 1, 2}} {
		err := c.CreateCollection(ctx(t), &qdrant.CreateCollection{
			CollectionName: tc.name, VectorsConfig: vectors,
			ShardNumber: proto.Uint32(tc.s), ReplicationFactor: proto.Uint32(tc.r), WriteConsistencyFactor: proto.Uint32(tc.w),
		})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if s, r, w := shardingOf(t, c, tc.name); s != tc.s || r != tc.r || w != tc.w {
			t.Fatalf("%s: reported %d/%d/%d, created with %d/%d/%d", tc.name, s, r, w, tc.s, tc.r, tc.w)
		}
	}
	// Points go in and come out whatever the sharding says (one node holds every shard).
	upsert(t, c, "replicated", pt(1, nil, 1, 0, 0, 0), pt(2, nil, 0, 1, 0, 0))
	if n, err := c.Count(ctx(t), &qdrant.CountPoints{CollectionName: "replicated", Exact: proto.Bool(true)}); err != nil || n != 2 {
		t.Fatalf("count %d, %v", n, err)
	}
}

func TestShardingZeroRefusedAsQdrantDoes(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	vectors := qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: 4, Distance: qdrant.Distance_Cosine})
	for _, tc := range []struct {
		req  *qdrant.CreateCollection
		want string
	}{
		{&qdrant.CreateCollection{ShardNumber: proto.Uint32(0)},
			"Validation error in body: [shard_number: value 0 invalid, must be 1 or larger]"},
		{&qdrant.CreateCollection{ReplicationFactor: proto.Uint32(0)},
			"Validation error in body: [replication_factor: value 0 invalid, must be 1 or larger]"},
		{&qdrant.CreateCollection{WriteConsistencyFactor: proto.Uint32(0)},
			"Validation error in body: [write_consistency_factor: value 0 invalid, must be 1 or larger]"},
		{&qdrant.CreateCollection{ShardNumber: proto.Uint32(0), WriteConsistencyFactor: proto.Uint32(0)},
			"Validation error in body: [shard_number: value 0 invalid, must be 1 or larger; write_consistency_factor: value 0 invalid, must be 1 or larger]"},
	} {
		tc.req.CollectionName, tc.req.VectorsConfig = "docs", vectors
		wantStatus(t, c.CreateCollection(ctx(t), tc.req), codes.InvalidArgument, tc.want)
		if ok, err := c.CollectionExists(ctx(t), "docs"); err != nil || ok {
			t.Fatalf("a refused create left a collection (exists %v, %v)", ok, err)
		}
	}
}

func TestShardingUpdate(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, "")
	err := c.CreateCollection(ctx(t), &qdrant.CreateCollection{
		CollectionName: "docs", VectorsConfig: qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: 4, Distance: qdrant.Distance_Cosine}),
		ShardNumber: proto.Uint32(2), ReplicationFactor: proto.Uint32(1),
	})
	if err != nil {
		t.Fatal(err)
	}

	// Replication and write consistency change; the shard count stays what creation set
	// (CollectionParamsDiff has no shard_number: only resharding changes it).
	err = c.UpdateCollection(ctx(t), &qdrant.UpdateCollection{CollectionName: "docs",
		Params: &qdrant.CollectionParamsDiff{ReplicationFactor: proto.Uint32(3), WriteConsistencyFactor: proto.Uint32(2)}})
	if err != nil {
		t.Fatal(err)
	}
	if s, r, w := shardingOf(t, c, "docs"); s != 2 || r != 3 || w != 2 {
		t.Fatalf("after update: %d/%d/%d, want 2/3/2", s, r, w)
	}
	// One field alone leaves the other as it was.
	err = c.UpdateCollection(ctx(t), &qdrant.UpdateCollection{CollectionName: "docs",
		Params: &qdrant.CollectionParamsDiff{WriteConsistencyFactor: proto.Uint32(1)}})
	if err != nil {
		t.Fatal(err)
	}
	if s, r, w := shardingOf(t, c, "docs"); s != 2 || r != 3 || w != 1 {
		t.Fatalf("after the second update: %d/%d/%d, want 2/3/1", s, r, w)
	}

	// Zero is refused by validation and changes nothing, not even the valid field beside it.
	err = c.UpdateCollection(ctx(t), &qdrant.UpdateCollection{CollectionName: "docs",
		Params: &qdrant.CollectionParamsDiff{ReplicationFactor: proto.Uint32(0), WriteConsistencyFactor: proto.Uint32(2)}})
	wantStatus(t, err, codes.InvalidArgument, "Validation error in body: [params.replication_factor: value 0 invalid, must be 1 or larger]")
	if s, r, w := shardingOf(t, c, "docs"); s != 2 || r != 3 || w != 1 {
		t.Fatalf("after a refused update: %d/%d/%d, want 2/3/1", s, r, w)
	}
	// Validation comes before the lookup, as in Qdrant: a missing collection gets the
	// validation error for a zero, NotFound otherwise.
	err = c.UpdateCollection(ctx(t), &qdrant.UpdateCollection{CollectionName: "nope",
		Params: &qdrant.CollectionParamsDiff{WriteConsistencyFactor: proto.Uint32(0)}})
	wantStatus(t, err, codes.InvalidArgument, "Validation error in body: [params.write_consistency_factor: value 0 invalid, must be 1 or larger]")
	err = c.UpdateCollection(ctx(t), &qdrant.UpdateCollection{CollectionName: "nope",
		Params: &qdrant.CollectionParamsDiff{WriteConsistencyFactor: proto.Uint32(2)}})
	wantStatus(t, err, codes.NotFound, "Not found: Collection `nope` doesn't exist!")
}
