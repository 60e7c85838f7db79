package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
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

// TestConstantTimePath checks the comparison path deterministically instead of by timing: for
// a token matching the first key, the last key, or none (empty and very long tokens included),
// Authenticate compares exactly one whole SHA-256 digest against every key, always the
// token's digest, through the constant-time compare. An early exit, a prefix compare or a
// plain == on the token would change what is recorded.
func TestConstantTimePath(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	const n = 50
	for i := 0; i < n; i++ {
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
	type call struct{ a, b []byte }
	var calls []call
	compareHash = func(x, y []byte) int {
		calls = append(calls, call{slices.Clone(x), slices.Clone(y)})
		return subtle.ConstantTimeCompare(x, y)
	}
	t.Cleanup(func() { compareHash = subtle.ConstantTimeCompare })
	for _, tc := range []struct {
		token string
		want  string // key name, "" for none
	}{
		{fmt.Sprintf("token-%016d", 0), "k0"},
		{fmt.Sprintf("token-%016d", n-1), fmt.Sprintf("k%d", n-1)},
		{"no-such-token-at-all", ""},
		{"", ""},
		{strings.Repeat("x", 10000), ""},
	} {
		calls = nil
		p, ok := k.Authenticate(tc.token)
		if ok != (tc.want != "") || p.Name != tc.want {
			t.Errorf("%.20q: got %q %v, want %q", tc.token, p.Name, ok, tc.want)
		}
		if len(calls) != n {
			t.Errorf("%.20q: %d comparisons, want one per key (%d): the loop must not exit early", tc.token, len(calls), n)
			continue
		}
		digest := sha256.Sum256([]byte(tc.token))
		for i, c := range calls {
			want := sha256.Sum256([]byte(fmt.Sprintf("token-%016d", i)))
			if !slices.Equal(c.a, digest[:]) || !slices.Equal(c.b, want[:]) {
				t.Fatalf("%.20q: comparison %d was not the token's whole digest against key %d's", tc.token, i, i)
			}
		}
	}
}

func TestMiddlewareWith(t *testing.T) {
	k, err := NewStatic([]byte(keysJSON()))
	if err != nil {
		t.Fatal(err)
	}
	h := MiddlewareWith(k, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }),
		func(w http.ResponseWriter, msg string) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, "custom: %s", msg)
		})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 401 || rec.Body.String() != "custom: "+Unauthorized || rec.Header().Get("WWW-Authenticate") == "" {
		t.Fatalf("%d %q %v", rec.Code, rec.Body, rec.Header())
	}
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	h.ServeHTTP(rec, req)
	if rec.Code != 204 {
		t.Fatalf("valid key: %d", rec.Code)
	}
}
