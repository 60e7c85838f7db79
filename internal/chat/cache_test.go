package chat

import (
	"fmt"
	"testing"
)

func TestCacheKey(t *testing.T) {
	k := func(q string, tags []string, gen uint64) string { return cacheKey(q, tags, gen) }
	same := [][2]string{
		{k("How many days?", []string{"b", "a"}, 1), k("  how   MANY days? ", []string{"a", "b", "a"}, 1)},
	}
	for _, p := range same {
		if p[0] != p[1] {
			t.Errorf("%s != %s", p[0], p[1])
		}
	}
	distinct := []string{
		k("q", nil, 1),
		k("q", []string{}, 1),
		k("q", []string{"a"}, 1),
		k("q", []string{"a", "b"}, 1),
		k("q", []string{"a b"}, 1),
		k(`q" "a`, nil, 1),
		k("q", []string{"a"}, 2),
		k("q2", []string{"a"}, 1),
	}
	seen := map[string]int{}
	for i, key := range distinct {
		if j, ok := seen[key]; ok {
			t.Errorf("keys %d and %d collide: %s", j, i, key)
		}
		seen[key] = i
	}
}

func TestCacheLRUAndGenerations(t *testing.T) {
	c := NewCache(2)
	put := func(key string) { c.put(c.Generation(), key, Response{Answer: key, Sources: []Citation{{Name: key}}}) }
	put("a")
	put("b")
	if _, ok := c.get("a"); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	put("c") // evicts b, the least recently used
	if _, ok := c.get("b"); ok {
		t.Error("b survived eviction")
	}
	for _, k := range []string{"a", "c"} {
		if r, ok := c.get(k); !ok || r.Answer != k {
			t.Errorf("%s: %+v %v", k, r, ok)
		}
	}
	if c.Len() != 2 {
		t.Errorf("len %d", c.Len())
	}

	// A returned answer is a copy: changing it does not change the entry.
	r, _ := c.get("a")
	r.Sources[0].Name = "changed"
	if r2, _ := c.get("a"); r2.Sources[0].Name != "a" {
		t.Error("cache entry shares its slice with a caller")
	}

	// An answer computed before a Bump is not stored after it.
	gen := c.Generation()
	c.Bump()
	if c.Len() != 0 || c.Generation() != gen+1 {
		t.Fatalf("after Bump: len %d gen %d", c.Len(), c.Generation())
	}
	c.put(gen, "late", Response{Answer: "stale"})
	if _, ok := c.get("late"); ok || c.Len() != 0 {
		t.Error("a stale answer was stored after Bump")
	}
}

func TestCacheBounded(t *testing.T) {
	c := NewCache(100)
	for i := range 1000 {
		c.put(0, fmt.Sprint(i), Response{})
	}
	if c.Len() != 100 || len(c.items) != 100 {
		t.Errorf("len %d, map %d", c.Len(), len(c.items))
	}
}
