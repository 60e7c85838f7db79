// Package auth checks bearer API keys read from the mounted keys file and decides what each
// key may do.
//
// Keys file: a JSON list of records {"name", "token" | "sha256", "role": "admin"|"user",
// "tags": [...]}. A "token" is hashed with SHA-256 as the file is read and the plain token is
// dropped; a "sha256" (64 hex digits) is the hash of the token, for files that should not hold
// tokens at all. Presented tokens are hashed and compared with every key's hash in constant
// time, so neither the match position nor a prefix leaks through timing. The file is re-read
// when its content changes (polled: Kubernetes updates mounted Secrets by swapping a symlink,
// which file-change notifications on the file itself miss); a broken new file keeps the old keys.
//
// Roles and tags:
//   - admin: everything, on every document.
//   - user: must carry at least one tag. Sees (lists, reads, searches) only documents carrying
//     at least one of its tags. Uploads only with tags from its own set (none given: all of its
//     tags). Deletes, reprocesses and re-tags only documents it uploaded (owner = key name) and
//     still sees, and only to tags from its own set.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Role is what a key may do.
type Role string

// Roles.
const (
	Admin Role = "admin"
	User  Role = "user"
)

// Principal is the caller a request was authenticated as.
type Principal struct {
	Name string
	Role Role
	Tags []string // for users: the tags it is limited to
}

// IsAdmin reports an admin key.
func (p Principal) IsAdmin() bool { return p.Role == Admin }

// CanSee reports whether the caller may see a document with these tags.
func (p Principal) CanSee(docTags []string) bool {
	if p.IsAdmin() {
		return true
	}
	for _, t := range docTags {
		if slices.Contains(p.Tags, t) {
			return true
		}
	}
	return false
}

// CanModify reports whether the caller may delete, reprocess or re-tag a document.
func (p Principal) CanModify(owner string, docTags []string) bool {
	return p.IsAdmin() || (owner == p.Name && p.CanSee(docTags))
}

// AllowedTags checks tags a caller wants to put on a document and returns the tags to use:
// for a user every tag must be its own (none given: all of its own); an admin may use any.
func (p Principal) AllowedTags(tags []string) ([]string, error) {
	if p.IsAdmin() {
		return tags, nil
	}
	if len(tags) == 0 {
		return slices.Clone(p.Tags), nil
	}
	for _, t := range tags {
		if !slices.Contains(p.Tags, t) {
			return nil, fmt.Errorf("key %q may not use tag %q", p.Name, t)
		}
	}
	return tags, nil
}

// SearchTags is the tag filter for the caller's searches and lists: nil (no restriction) for
// an admin, its tags for a user.
func (p Principal) SearchTags() []string {
	if p.IsAdmin() {
		return nil
	}
	return p.Tags
}

// Record is one entry of the keys file.
type Record struct {
	Name   string   `json:"name"`
	Token  string   `json:"token,omitempty"`
	SHA256 string   `json:"sha256,omitempty"`
	Role   Role     `json:"role"`
	Tags   []string `json:"tags,omitempty"`
}

type key struct {
	hash [sha256.Size]byte
	p    Principal
}

// ParseKeys reads and checks a keys file. Errors name the record.
func ParseKeys(data []byte) ([]Principal, [][sha256.Size]byte, error) {
	var recs []Record
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&recs); err != nil {
		return nil, nil, fmt.Errorf("keys file: %w", err)
	}
	var errs []error
	seen := map[string]bool{}
	var ps []Principal
	var hs [][sha256.Size]byte
	for i, r := range recs {
		where := fmt.Sprintf("keys[%d] (%q)", i, r.Name)
		if strings.TrimSpace(r.Name) == "" {
			errs = append(errs, fmt.Errorf("keys[%d]: name must be set", i))
			continue
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate name", where))
			continue
		}
		seen[r.Name] = true
		var h [sha256.Size]byte
		switch {
		case r.Token != "" && r.SHA256 != "":
			errs = append(errs, fmt.Errorf("%s: set token or sha256, not both", where))
			continue
		case r.Token != "":
			if len(r.Token) < 16 {
				errs = append(errs, fmt.Errorf("%s: token must be at least 16 characters", where))
				continue
			}
			h = sha256.Sum256([]byte(r.Token))
		case r.SHA256 != "":
			b, err := hex.DecodeString(r.SHA256)
			if err != nil || len(b) != sha256.Size {
				errs = append(errs, fmt.Errorf("%s: sha256 must be 64 hex digits", where))
				continue
			}
			copy(h[:], b)
		default:
			errs = append(errs, fmt.Errorf("%s: token or sha256 must be set", where))
			continue
		}
		switch r.Role {
		case Admin:
		case User:
			if len(r.Tags) == 0 {
				errs = append(errs, fmt.Errorf("%s: a user key must list at least one tag", where))
				continue
			}
		default:
			errs = append(errs, fmt.Errorf("%s: role must be admin or user, got %q", where, r.Role))
			continue
		}
		ps = append(ps, Principal{Name: r.Name, Role: r.Role, Tags: slices.Clone(r.Tags)})
		hs = append(hs, h)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return ps, hs, nil
}

// Authenticator maps a bearer token to a Principal.
type Authenticator interface {
	Authenticate(token string) (Principal, bool)
}

// Keys is the key set from a file, safe for concurrent use and reloadable.
type Keys struct {
	path string
	log  *slog.Logger

	mu      sync.RWMutex
	keys    []key
	digest  [sha256.Size]byte // of the file content last loaded
	loadErr error
}

// LoadFile reads the keys file; it fails when the file is missing or invalid (a server must
// not start with broken keys).
func LoadFile(path string, log *slog.Logger) (*Keys, error) {
	if log == nil {
		log = slog.Default()
	}
	k := &Keys{path: path, log: log}
	if _, err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// NewStatic is a key set from records in memory (tests, tools).
func NewStatic(data []byte) (*Keys, error) {
	k := &Keys{log: slog.Default()}
	if err := k.set(data); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Keys) set(data []byte) error {
	ps, hs, err := ParseKeys(data)
	if err != nil {
		return err
	}
	keys := make([]key, len(ps))
	for i := range ps {
		keys[i] = key{hash: hs[i], p: ps[i]}
	}
	k.mu.Lock()
	k.keys, k.digest = keys, sha256.Sum256(data)
	k.mu.Unlock()
	return nil
}

// reload re-reads the file when its content changed; it reports whether keys were replaced.
func (k *Keys) reload() (bool, error) {
	data, err := os.ReadFile(k.path)
	if err != nil {
		return false, fmt.Errorf("keys file: %w", err)
	}
	k.mu.RLock()
	same := k.keys != nil && sha256.Sum256(data) == k.digest
	k.mu.RUnlock()
	if same {
		return false, nil
	}
	if err := k.set(data); err != nil {
		return false, fmt.Errorf("%s: %w", k.path, err)
	}
	return true, nil
}

// Watch re-reads the file every interval until ctx ends. A file that fails to read or parse
// is logged and the previous keys stay in force.
func (k *Keys) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := k.reload()
		k.mu.Lock()
		report := err != nil && (k.loadErr == nil || k.loadErr.Error() != err.Error())
		k.loadErr = err
		k.mu.Unlock()
		switch {
		case report:
			k.log.Error("Failed to reload API keys, keeping the previous set", "error", err)
		case changed:
			k.log.Info("Reloaded API keys", "keys", k.Len())
		}
	}
}

// Len is the number of keys.
func (k *Keys) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.keys)
}

// compareHash compares two SHA-256 digests in constant time. It is a variable only so the
// test can observe every comparison Authenticate makes (TestConstantTimePath).
var compareHash = subtle.ConstantTimeCompare

// Authenticate compares the token's hash with every key in constant time. The loop never
// exits early and always compares whole digests (the token is hashed first, so its length
// does not matter), so the time taken does not depend on which key (if any) matched.
func (k *Keys) Authenticate(token string) (Principal, bool) {
	h := sha256.Sum256([]byte(token))
	k.mu.RLock()
	defer k.mu.RUnlock()
	found := -1
	for i := range k.keys {
		if compareHash(h[:], k.keys[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 || token == "" {
		return Principal{}, false
	}
	return k.keys[found].p, true
}

// Anonymous authenticates every request as an admin: --insecure-no-auth, local use only.
type Anonymous struct{}

// Authenticate always succeeds.
func (Anonymous) Authenticate(string) (Principal, bool) {
	return Principal{Name: "anonymous", Role: Admin}, true
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the request's Principal.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// Middleware requires "Authorization: Bearer <token>" and puts the Principal in the request
// context; anything else is 401 with a WWW-Authenticate challenge.
func Middleware(a Authenticator, next http.Handler) http.Handler {
	return MiddlewareWith(a, next, func(w http.ResponseWriter, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		b, _ := json.Marshal(map[string]string{"error": msg})
		w.Write(append(b, '\n'))
	})
}

// Unauthorized is the sentence a refused request gets.
const Unauthorized = "missing or invalid API key"

// MiddlewareWith is Middleware with the 401's body written by deny (an API with its own error
// shape, such as the OpenAI-compatible routes); the WWW-Authenticate challenge is already set.
func MiddlewareWith(a Authenticator, next http.Handler, deny func(w http.ResponseWriter, msg string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, _ := bearer(r.Header.Get("Authorization")) // "" when absent: no key matches it
		p, valid := a.Authenticate(token)
		if !valid {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rag-server"`)
			deny(w, Unauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
