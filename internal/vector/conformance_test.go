package vector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/qdrantdouble"
)

// backend opens stores of one implementation on one shared backing (a directory, a Qdrant
// double), so a test can open a second store on the same data with another configuration.
type backend func(t *testing.T, cfg serverconfig.Collection) (Store, error)

func backends() map[string]func(t *testing.T) backend {
	return map[string]func(t *testing.T) backend{
		"memory": func(t *testing.T) backend {
			dir := t.TempDir()
			return func(t *testing.T, cfg serverconfig.Collection) (Store, error) {
				return NewMemory(dir, cfg)
			}
		},
		"qdrant": func(t *testing.T) backend {
			srv := qdrantdouble.Start(t)
			host, port := srv.Addr()
			return func(t *testing.T, cfg serverconfig.Collection) (Store, error) {
				return NewQdrant(context.Background(), QdrantOptions{
					Addr:       net.JoinHostPort(host, strconv.Itoa(port)),
					Collection: cfg, HNSWEf: 128, UpsertBatch: 3,
					SkipCompatibilityCheck: true, CreateIfMissing: true,
				})
			}
		},
	}
}

var cosine4 = serverconfig.Collection{Name: "docs", VectorSize: 4, Distance: "Cosine"}

// open opens and ensures a store, closing it when the test ends.
func open(t *testing.T, b backend, cfg serverconfig.Collection) Store {
	t.Helper()
	s, err := b(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.EnsureCollection(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformance runs the same behaviour checks against every Store implementation.
func TestConformance(t *testing.T) {
	for name, mk := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range conformance {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, mk(t)) })
			}
		})
	}
}

var conformance = []struct {
	name string
	run  func(t *testing.T, b backend)
}{
	{"search order and payload", testSearchOrder},
	{"score threshold", testThreshold},
	{"tag filter hides other documents", testTagFilter},
	{"reprocess never leaves the document without points", testReprocess},
	{"set tags", testSetTags},
	{"wrong dimension", testWrongDimension},
	{"collection mismatch", testMismatch},
	{"euclid and dot scores", testDistances},
	{"concurrent use", testConcurrent},
}

func chunk(doc string, idx int, vec []float32, tags ...string) Chunk {
	return Chunk{
		DocumentID: doc, Name: doc + ".pdf", ChunkIndex: idx,
		Text: fmt.Sprintf("%s chunk %d", doc, idx), Tags: tags,
		Page: idx + 1, Section: "Intro", Vector: vec,
	}
}

func mustUpsert(t *testing.T, s Store, cs ...Chunk) {
	t.Helper()
	if err := s.Upsert(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
}

func search(t *testing.T, s Store, q []float32, o SearchOptions) []Hit {
	t.Helper()
	hits, err := s.Search(context.Background(), q, o)
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

func count(t *testing.T, s Store, f Filter) int {
	t.Helper()
	n, err := s.Count(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func ids(hits []Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.DocumentID + ":" + strconv.Itoa(h.ChunkIndex)
	}
	return out
}

func near(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-5 }

func testSearchOrder(t *testing.T, b backend) {
	s := open(t, b, cosine4)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustUpsert(t, s,
		chunk("a", 0, []float32{1, 0, 0, 0}, "t1", "t2"),
		chunk("a", 1, []float32{1, 1, 0, 0}),
		chunk("a", 2, []float32{0, 1, 0, 0}),
		chunk("b", 0, []float32{-1, 0, 0, 0}),
	)
	if err := s.Upsert(context.Background(), nil); err != nil {
		t.Fatalf("empty upsert: %v", err)
	}
	hits := search(t, s, []float32{2, 0, 0, 0}, SearchOptions{Limit: 10})
	if got, want := ids(hits), []string{"a:0", "a:1", "a:2", "b:0"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	for i, want := range []float32{1, float32(1 / math.Sqrt2), 0, -1} {
		if !near(hits[i].Score, want) {
			t.Errorf("hit %d score %v, want %v (cosine of normalised vectors)", i, hits[i].Score, want)
		}
	}
	want := chunk("a", 0, nil, "t1", "t2")
	if got := hits[0].Chunk; got.DocumentID != want.DocumentID || got.Name != want.Name || got.Text != want.Text ||
		got.Page != want.Page || got.Section != want.Section || !slices.Equal(got.Tags, want.Tags) || got.Vector != nil {
		t.Errorf("payload %+v, want %+v without vector", got, want)
	}
	if hits := search(t, s, []float32{1, 0, 0, 0}, SearchOptions{Limit: 2}); len(hits) != 2 {
		t.Errorf("limit 2 gave %d hits", len(hits))
	}
	if n := count(t, s, Filter{}); n != 4 {
		t.Errorf("count %d, want 4", n)
	}
	// Re-upserting the same chunk overwrites it (deterministic point id).
	mustUpsert(t, s, chunk("a", 0, []float32{0, 0, 1, 0}))
	if n := count(t, s, Filter{}); n != 4 {
		t.Errorf("count after re-upsert %d, want 4", n)
	}
}

func testThreshold(t *testing.T, b backend) {
	s := open(t, b, cosine4)
	mustUpsert(t, s,
		chunk("a", 0, []float32{1, 0, 0, 0}),
		chunk("a", 1, []float32{1, 1, 0, 0}),
		chunk("a", 2, []float32{0, 1, 0, 0}),
	)
	hits := search(t, s, []float32{1, 0, 0, 0}, SearchOptions{Limit: 10, ScoreThreshold: 0.5, HNSWEf: 64})
	if got := ids(hits); !slices.Equal(got, []string{"a:0", "a:1"}) {
		t.Fatalf("hits %v, want those scoring >= 0.5", got)
	}
}

func testTagFilter(t *testing.T, b backend) {
	s := open(t, b, cosine4)
	mustUpsert(t, s,
		chunk("a", 0, []float32{1, 0, 0, 0}, "team-a"),
		chunk("a", 1, []float32{1, 0.1, 0, 0}, "team-a", "shared"),
		chunk("b", 0, []float32{1, 0.2, 0, 0}, "team-b"),
		chunk("c", 0, []float32{1, 0.3, 0, 0}),
	)
	q := []float32{1, 0, 0, 0}
	for _, tc := range []struct {
		f    Filter
		want []string
	}{
		{Filter{AnyTags: []string{"team-a"}}, []string{"a:0", "a:1"}},
		{Filter{AnyTags: []string{"team-b"}}, []string{"b:0"}},
		{Filter{AnyTags: []string{"team-b", "shared"}}, []string{"a:1", "b:0"}},
		{Filter{AnyTags: []string{"nobody"}}, []string{}},
		{Filter{DocumentIDs: []string{"b", "c"}}, []string{"b:0", "c:0"}},
		{Filter{AnyTags: []string{"team-a"}, DocumentIDs: []string{"b"}}, []string{}},
		{Filter{}, []string{"a:0", "a:1", "b:0", "c:0"}},
	} {
		if got := ids(search(t, s, q, SearchOptions{Limit: 10, Filter: tc.f})); !slices.Equal(got, tc.want) {
			t.Errorf("filter %+v: hits %v, want %v", tc.f, got, tc.want)
		}
		if n := count(t, s, tc.f); n != len(tc.want) {
			t.Errorf("filter %+v: count %d, want %d", tc.f, n, len(tc.want))
		}
	}
}

func testReprocess(t *testing.T, b backend) {
	s := open(t, b, cosine4)
	ctx := context.Background()
	doc := Filter{DocumentIDs: []string{"d"}}
	var v1 []Chunk
	for i := range 5 {
		c := chunk("d", i, []float32{1, float32(i), 0, 0})
		c.Text = "v1 " + c.Text
		v1 = append(v1, c)
	}
	mustUpsert(t, s, v1...)
	mustUpsert(t, s, chunk("other", 0, []float32{0, 0, 1, 0}))

	// Reprocess to 3 chunks: upsert the new ones first, then trim the old tail.
	var v2 []Chunk
	for i := range 3 {
		c := chunk("d", i, []float32{1, float32(i), 1, 0})
		c.Text = "v2 " + c.Text
		v2 = append(v2, c)
	}
	mustUpsert(t, s, v2...)
	if n := count(t, s, doc); n != 5 {
		t.Fatalf("after upserting the new chunks: %d points, want 5 (3 new + 2 old tail)", n)
	}
	if err := s.DeleteDocument(ctx, "d", len(v2)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, doc); n != 3 {
		t.Fatalf("after trimming: %d points, want 3", n)
	}
	for _, h := range search(t, s, []float32{1, 0, 0, 0}, SearchOptions{Limit: 10, Filter: doc}) {
		if !strings.HasPrefix(h.Text, "v2 ") || h.ChunkIndex >= 3 {
			t.Errorf("stale chunk %d %q", h.ChunkIndex, h.Text)
		}
	}
	if err := s.DeleteDocument(ctx, "d", -1); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, doc); n != 0 {
		t.Fatalf("after delete: %d points", n)
	}
	if n := count(t, s, Filter{}); n != 1 {
		t.Fatalf("other document: %d points, want 1", n)
	}
	if err := s.DeleteDocument(ctx, "never-there", -1); err != nil {
		t.Fatalf("deleting an unknown document: %v", err)
	}
}

func testSetTags(t *testing.T, b backend) {
	s := open(t, b, cosine4)
	mustUpsert(t, s,
		chunk("a", 0, []float32{1, 0, 0, 0}, "old"),
		chunk("a", 1, []float32{0, 1, 0, 0}, "old"),
		chunk("b", 0, []float32{0, 0, 1, 0}, "old"),
	)
	if err := s.SetTags(context.Background(), "a", []string{"new", "x"}); err != nil {
		t.Fatal(err)
	}
	q := []float32{1, 1, 1, 0}
	if got := ids(search(t, s, q, SearchOptions{Limit: 10, Filter: Filter{AnyTags: []string{"new"}}})); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"a:0", "a:1"}) {
		t.Errorf("new tag finds %v", got)
	}
	if got := ids(search(t, s, q, SearchOptions{Limit: 10, Filter: Filter{AnyTags: []string{"old"}}})); !slices.Equal(got, []string{"b:0"}) {
		t.Errorf("old tag finds %v, want only the untouched document", got)
	}
	hits := search(t, s, q, SearchOptions{Limit: 10, Filter: Filter{DocumentIDs: []string{"a"}}})
	for _, h := range hits {
		if !slices.Equal(h.Tags, []string{"new", "x"}) || h.Text == "" || h.Name != "a.pdf" {
			t.Errorf("after SetTags: %+v (tags replaced, the rest kept)", h.Chunk)
		}
	}
	if err := s.SetTags(context.Background(), "a", nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, Filter{AnyTags: []string{"new"}}); n != 0 {
		t.Errorf("cleared tags still match: %d", n)
	}
}

func testWrongDimension(t *testing.T, b backend) {
	s := open(t, b, cosine4)
	err := s.Upsert(context.Background(), []Chunk{
		chunk("a", 0, []float32{1, 0, 0, 0}),
		chunk("a", 1, []float32{1, 0, 0}),
	})
	if !errors.Is(err, ErrDimension) {
		t.Fatalf("upsert: %v, want ErrDimension", err)
	}
	if n := count(t, s, Filter{}); n != 0 {
		t.Errorf("%d points written by a rejected upsert", n)
	}
	if _, err := s.Search(context.Background(), []float32{1, 0, 0, 0, 0}, SearchOptions{}); !errors.Is(err, ErrDimension) {
		t.Fatalf("search: %v, want ErrDimension", err)
	}
}

func testMismatch(t *testing.T, b backend) {
	s := open(t, b, cosine4)
	mustUpsert(t, s, chunk("a", 0, []float32{1, 0, 0, 0}))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []serverconfig.Collection{
		{Name: "docs", VectorSize: 8, Distance: "Cosine"},
		{Name: "docs", VectorSize: 4, Distance: "Dot"},
	} {
		s2, err := b(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = s2.EnsureCollection(context.Background())
		if !errors.Is(err, ErrCollectionMismatch) {
			t.Errorf("%+v: %v, want ErrCollectionMismatch", cfg, err)
		} else if msg := err.Error(); cfg.VectorSize == 8 && !(strings.Contains(msg, "size 4") && strings.Contains(msg, "configured 8")) ||
			cfg.Distance == "Dot" && !(strings.Contains(msg, "Cosine") && strings.Contains(msg, "configured Dot")) {
			t.Errorf("error %q does not name both values", msg)
		}
		_ = s2.Close()
	}
}

func testDistances(t *testing.T, b backend) {
	eu := open(t, b, serverconfig.Collection{Name: "eu", VectorSize: 2, Distance: "Euclid"})
	mustUpsert(t, eu,
		chunk("p", 0, []float32{0, 0}),
		chunk("p", 1, []float32{3, 4}),
		chunk("p", 2, []float32{1, 0}),
	)
	hits := search(t, eu, []float32{0, 0}, SearchOptions{Limit: 10})
	if got := ids(hits); !slices.Equal(got, []string{"p:0", "p:2", "p:1"}) {
		t.Fatalf("euclid order %v", got)
	}
	for i, want := range []float32{0, -1, -5} {
		if !near(hits[i].Score, want) {
			t.Errorf("euclid hit %d score %v, want %v (minus the distance)", i, hits[i].Score, want)
		}
	}
	if got := ids(search(t, eu, []float32{0, 0}, SearchOptions{Limit: 10, ScoreThreshold: -1.5})); !slices.Equal(got, []string{"p:0", "p:2"}) {
		t.Errorf("euclid threshold -1.5 (distance <= 1.5): %v", got)
	}

	dt := open(t, b, serverconfig.Collection{Name: "dot", VectorSize: 2, Distance: "Dot"})
	mustUpsert(t, dt, chunk("p", 0, []float32{2, 0}), chunk("p", 1, []float32{1, 1}))
	hits = search(t, dt, []float32{3, 1}, SearchOptions{Limit: 10})
	if got := ids(hits); !slices.Equal(got, []string{"p:0", "p:1"}) || !near(hits[0].Score, 6) || !near(hits[1].Score, 4) {
		t.Errorf("dot hits %v %+v", got, hits)
	}
}

func testConcurrent(t *testing.T, b backend) {
	s := open(t, b, cosine4)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			doc := "doc" + strconv.Itoa(w)
			for i := range 5 {
				if err := s.Upsert(context.Background(), []Chunk{chunk(doc, i, []float32{1, float32(w), float32(i), 1})}); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Search(context.Background(), []float32{1, 0, 0, 0}, SearchOptions{Limit: 3}); err != nil {
					t.Error(err)
					return
				}
			}
			if err := s.SetTags(context.Background(), doc, []string{doc}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := count(t, s, Filter{}); n != 40 {
		t.Fatalf("count %d, want 40", n)
	}
	if n := count(t, s, Filter{AnyTags: []string{"doc3"}}); n != 5 {
		t.Fatalf("doc3 tagged points %d, want 5", n)
	}
}
