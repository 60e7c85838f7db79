package vector

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/qdrant/go-client/qdrant"

	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/qdrantdouble"
)

func doubleAddr(srv *qdrantdouble.Server) string {
	host, port := srv.Addr()
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func newQdrant(t *testing.T, o QdrantOptions) *Qdrant {
	t.Helper()
	o.SkipCompatibilityCheck = true
	q, err := NewQdrant(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func TestQdrantUpsertBatchesAndIndexes(t *testing.T) {
	srv := qdrantdouble.Start(t)
	q := newQdrant(t, QdrantOptions{Addr: doubleAddr(srv), Collection: cosine4, UpsertBatch: 3, CreateIfMissing: true})
	if err := q.EnsureCollection(context.Background()); err != nil {
		t.Fatal(err)
	}
	info, ok := srv.Collection("docs")
	if !ok {
		t.Fatal("collection not created")
	}
	for _, ix := range payloadIndexes {
		if got := info.GetPayloadSchema()[ix.field].GetDataType(); got != ix.want {
			t.Errorf("payload index %s: %v, want %v", ix.field, got, ix.want)
		}
	}
	// A second EnsureCollection finds the indexes and creates nothing.
	before := srv.Calls(qdrant.Points_CreateFieldIndex_FullMethodName)
	if err := q.EnsureCollection(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := srv.Calls(qdrant.Points_CreateFieldIndex_FullMethodName); after != before {
		t.Errorf("indexes re-created: %d -> %d calls", before, after)
	}

	var cs []Chunk
	for i := range 10 {
		cs = append(cs, chunk("doc", i, []float32{1, float32(i), 0, 0}))
	}
	cs[4].Text = "bad utf-8 \xff here" // sanitised, not a marshalling failure
	mustUpsert(t, q, cs...)
	if n := srv.Calls(qdrant.Points_Upsert_FullMethodName); n != 4 {
		t.Errorf("%d upsert calls, want ceil(10/3) = 4", n)
	}
	if n := srv.Points("docs"); n != 10 {
		t.Errorf("%d points", n)
	}
}

func TestQdrantMissingCollection(t *testing.T) {
	srv := qdrantdouble.Start(t)
	q := newQdrant(t, QdrantOptions{Addr: doubleAddr(srv), Collection: cosine4})
	err := q.EnsureCollection(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("got %v", err)
	}
}

// The server's own dimension check (a collection re-created behind the server's back) is
// reported as ErrDimension too.
func TestQdrantServerDimensionError(t *testing.T) {
	srv := qdrantdouble.Start(t)
	small := newQdrant(t, QdrantOptions{Addr: doubleAddr(srv), Collection: cosine4, CreateIfMissing: true})
	if err := small.EnsureCollection(context.Background()); err != nil {
		t.Fatal(err)
	}
	big := newQdrant(t, QdrantOptions{Addr: doubleAddr(srv), Collection: serverconfig.Collection{Name: "docs", VectorSize: 8, Distance: "Cosine"}})
	err := big.Upsert(context.Background(), []Chunk{chunk("a", 0, make([]float32, 8))})
	if !errors.Is(err, ErrDimension) {
		t.Fatalf("upsert: %v, want ErrDimension", err)
	}
	if _, err := big.Search(context.Background(), make([]float32, 8), SearchOptions{}); !errors.Is(err, ErrDimension) {
		t.Fatalf("search: %v, want ErrDimension", err)
	}
}

func TestQdrantAPIKeyAndPing(t *testing.T) {
	srv := qdrantdouble.Start(t, qdrantdouble.WithAPIKey("secret"))
	withKey := newQdrant(t, QdrantOptions{Addr: doubleAddr(srv), Collection: cosine4, APIKey: "secret", CreateIfMissing: true})
	if err := withKey.Ping(context.Background()); err == nil {
		t.Fatal("ping before the collection exists succeeded")
	}
	if err := withKey.EnsureCollection(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := withKey.Ping(context.Background()); err != nil {
		t.Fatalf("with the key: %v", err)
	}
	// HealthCheck alone passes without a key; Ping must not.
	if err := newQdrant(t, QdrantOptions{Addr: doubleAddr(srv), Collection: cosine4}).Ping(context.Background()); err == nil {
		t.Fatal("ping without the key succeeded")
	}
	srv.Stop()
	if err := newQdrant(t, QdrantOptions{Addr: doubleAddr(srv), Collection: cosine4, APIKey: "secret"}).Ping(context.Background()); err == nil {
		t.Fatal("ping of a stopped server succeeded")
	}
}

func TestNewQdrantValidates(t *testing.T) {
	for _, o := range []QdrantOptions{
		{Addr: "qdrant", Collection: cosine4},
		{Addr: "qdrant:x", Collection: cosine4},
		{Addr: "qdrant:6334", Collection: serverconfig.Collection{Name: "docs", VectorSize: 4, Distance: "Hamming"}},
		{Addr: "qdrant:6334", Collection: serverconfig.Collection{VectorSize: 4, Distance: "Cosine"}},
	} {
		if _, err := NewQdrant(context.Background(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
