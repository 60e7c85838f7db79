package chat

import (
	"container/list"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Cache is an optional, bounded LRU of answers. It is off unless Config.Cache is set, because:
//   - an answer is only as fresh as the knowledge base it was drawn from; a stale answer after a
//     document is edited, deleted or re-tagged is worse than spending a few seconds on a new
//     one, so every change must call Bump, and a missed Bump (another replica, a path that
//     forgets) serves stale answers silently;
//   - free-form questions rarely repeat exactly, so the hit rate is low outside FAQ-like use.
//
// The key is exact, not semantic: the question normalised (lower case, white space collapsed),
// the caller's tag filter (sorted, de-duplicated; unrestricted and "no tags" are distinct), and
// the knowledge-base generation. The tags are in the key so that a key limited to some tags
// never receives an answer built from documents another key's filter allowed. Only answers
// without history are cached (history changes what an answer means), and no-context answers
// are not (they cost no model call).
type Cache struct {
	mu    sync.Mutex
	max   int
	gen   uint64
	lru   *list.List // of *cacheEntry, most recent first
	items map[string]*list.Element
}

type cacheEntry struct {
	key  string
	resp Response
}

// NewCache returns a cache of at most size answers (at least 1).
func NewCache(size int) *Cache {
	return &Cache{max: max(size, 1), lru: list.New(), items: map[string]*list.Element{}}
}

// Bump marks the knowledge base changed (ingest, delete, reprocess, tag update): no answer
// from before can be served again. Entries are dropped at once to free their memory.
func (c *Cache) Bump() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.lru.Init()
	clear(c.items)
}

// Generation is the current knowledge-base generation.
func (c *Cache) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// Len is the number of cached answers.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func (c *Cache) get(key string) (Response, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return Response{}, false
	}
	c.lru.MoveToFront(e)
	return cloneResponse(e.Value.(*cacheEntry).resp), true
}

// put stores resp under key unless the generation moved on since gen was read: an answer
// computed while a document changed must not outlive the change.
func (c *Cache) put(gen uint64, key string, resp Response) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if e, ok := c.items[key]; ok {
		e.Value.(*cacheEntry).resp = cloneResponse(resp)
		c.lru.MoveToFront(e)
		return
	}
	c.items[key] = c.lru.PushFront(&cacheEntry{key: key, resp: cloneResponse(resp)})
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(*cacheEntry)
		delete(c.items, old.key)
	}
}

// cacheKey is the cache key of a question asked with a tag filter at a generation. Each part is
// quoted, so no question or tag can forge another key's boundaries.
func cacheKey(question string, tags []string, gen uint64) string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(gen, 10))
	b.WriteByte(' ')
	b.WriteString(strconv.Quote(normalizeQuestion(question)))
	if tags == nil {
		b.WriteString(" *") // unrestricted
		return b.String()
	}
	t := slices.Clone(tags)
	slices.Sort(t)
	for _, tag := range slices.Compact(t) {
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(tag))
	}
	return b.String()
}

// normalizeQuestion: lower case, white space collapsed, so trivially different spellings of a
// question share an entry.
func normalizeQuestion(q string) string {
	return strings.Join(strings.Fields(strings.ToLower(q)), " ")
}

func cloneResponse(r Response) Response {
	r.Sources = slices.Clone(r.Sources)
	r.Context = slices.Clone(r.Context)
	return r
}
