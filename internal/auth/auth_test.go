package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

const (
	adminTok = "admin-token-0123456789"
	userTok  = "user-token-0123456789ab"
)

func hexHash(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func keysJSON() string {
	return fmt.Sprintf(`[
 {"name":"admin","token":%q,"role":"admin"},
 {"name":"alice","sha256":%q,"role":"user","tags":["finance","hr"]}
]`, adminTok, hexHash(userTok))
}

func TestAuthenticate(t *testing.T) {
	k, err := NewStatic([]byte(keysJSON()))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := k.Authenticate(adminTok); !ok || p.Name != "admin" || !p.IsAdmin() {
		t.Fatalf("admin: %+v %v", p, ok)
	}
	if p, ok := k.Authenticate(userTok); !ok || p.Name != "alice" || p.IsAdmin() || !slices.Equal(p.Tags, []string{"finance", "hr"}) {
		t.Fatalf("pre-hashed user: %+v %v", p, ok)
	}
	for _, bad := range []string{"", "admin-token-012345678", adminTok + "x", hexHash(userTok)} {
		if _, ok := k.Authenticate(bad); ok {
			t.Errorf("token %q accepted", bad)
		}
	}
}

func TestParseKeysErrors(t *testing.T) {
	cases := map[string]string{
		`[{"name":"","token":"0123456789abcdef","role":"admin"}]`:                                                         "name must be set",
		`[{"name":"a","role":"admin"}]`:                                                                                   "token or sha256 must be set",
		`[{"name":"a","token":"short","role":"admin"}]`:                                                                   "at least 16",
		`[{"name":"a","sha256":"abc","role":"admin"}]`:                                                                    "64 hex digits",
		`[{"name":"a","token":"0123456789abcdef","role":"root"}]`:                                                         "role must be admin or user",
		`[{"name":"a","token":"0123456789abcdef","role":"user"}]`:                                                         "at least one tag",
		`[{"name":"a","token":"0123456789abcdef","role":"admin","extra":1}]`:                                              "unknown field",
		`[{"name":"a","token":"0123456789abcdef","sha256":"00","role":"admin"}]`:                                          "not both",
		`[{"name":"a","token":"0123456789abcdef","role":"admin"},{"name":"a","token":"0123456789abcdeg","role":"admin"}]`: "duplicate",
	}
	for in, want := range cases {
		if _, _, err := ParseKeys([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %q", in, err, want)
		}
	}
}

func TestRolesAndTags(t *testing.T) {
	admin := Principal{Name: "admin", Role: Admin}
	alice := Principal{Name: "alice", Role: User, Tags: []string{"finance", "hr"}}
	if !admin.CanSee(nil) || !admin.CanModify("bob", []string{"x"}) || admin.SearchTags() != nil {
		t.Fatal("admin is limited")
	}
	if alice.CanSee(nil) || alice.CanSee([]string{"legal"}) || !alice.CanSee([]string{"legal", "hr"}) {
		t.Fatal("user sees wrong documents")
	}
	if alice.CanModify("bob", []string{"hr"}) || !alice.CanModify("alice", []string{"hr"}) || alice.CanModify("alice", []string{"legal"}) {
		t.Fatal("user modifies wrong documents")
	}
	if tags, err := alice.AllowedTags(nil); err != nil || !slices.Equal(tags, []string{"finance", "hr"}) {
		t.Fatalf("default tags %v %v", tags, err)
	}
	if _, err := alice.AllowedTags([]string{"hr", "legal"}); err == nil {
		t.Fatal("user used a foreign tag")
	}
	if tags, err := admin.AllowedTags([]string{"anything"}); err != nil || tags[0] != "anything" {
		t.Fatal("admin tags refused")
	}
}

func TestMiddleware(t *testing.T) {
	k, _ := NewStatic([]byte(keysJSON()))
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := FromContext(r.Context())
		w.Write([]byte(p.Name))
	})
	h := Middleware(k, inner)
	for hdr, want := range map[string]int{
		"":                    401,
		"Bearer":              401,
		"Basic " + adminTok:   401,
		"Bearer wrong-token!": 401,
		"Bearer " + adminTok:  200,
		"bearer " + userTok:   200,
	} {
		req := httptest.NewRequest("GET", "/api/documents", nil)
		if hdr != "" {
			req.Header.Set("Authorization", hdr)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%q: %d, want %d", hdr, rec.Code, want)
		}
		if want == 401 && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%q: no challenge", hdr)
		}
	}
	// --insecure-no-auth: everyone is an admin.
	rec := httptest.NewRecorder()
	Middleware(Anonymous{}, inner).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 {
		t.Fatalf("anonymous: %d", rec.Code)
	}
}

func TestReloadOnChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, []byte(keysJSON()), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go k.Watch(ctx, 10*time.Millisecond)

	newTok := "rotated-token-0123456789"
	os.WriteFile(path, []byte(fmt.Sprintf(`[{"name":"ops","token":%q,"role":"admin"}]`, newTok)), 0o600)
	waitFor(t, func() bool { _, ok := k.Authenticate(newTok); return ok })
	if _, ok := k.Authenticate(adminTok); ok {
		t.Fatal("old key still valid after rotation")
	}
	// A broken file keeps the current keys.
	os.WriteFile(path, []byte(`[{"name":`), 0o600)
	time.Sleep(50 * time.Millisecond)
	if _, ok := k.Authenticate(newTok); !ok {
		t.Fatal("broken file dropped the keys")
	}
	// A missing file refuses to start.
	if _, err := LoadFile(filepath.Join(t.TempDir(), "none.json"), nil); err == nil {
		t.Fatal("missing file accepted")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConstantTime checks that matching the first key, the last key or none takes about the
// same time: an early-exit comparison would differ by the number of keys (1000×).
func TestConstantTime(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	var b strings.Builder
	b.WriteString("[")
	for i := 0; i < 1000; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"name":"k%d","token":"token-%016d","role":"admin"}`, i, i)
	}
	b.WriteString("]")
	k, err := NewStatic([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	median := func(tok string) time.Duration {
		var ds []time.Duration
		for i := 0; i < 201; i++ {
			start := time.Now()
			k.Authenticate(tok)
			ds = append(ds, time.Since(start))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	first, last, none := median(fmt.Sprintf("token-%016d", 0)), median(fmt.Sprintf("token-%016d", 999)), median("no-such-token-at-all")
	lo, hi := min(first, last, none), max(first, last, none)
	if hi > 3*lo {
		t.Fatalf("timing depends on the match: first %v last %v none %v", first, last, none)
	}
}
