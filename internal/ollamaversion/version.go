// Package ollamaversion knows which OLLAMA_* server settings each Ollama release honours, so
// the operator never renders a variable the running version silently ignores.
package ollamaversion

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a release number major.minor.patch.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Less orders versions.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Patch < o.Patch
}

// Parse reads "0.24.0", "v0.30.1" or "0.30.0-rc2" (pre-release suffixes are dropped).
func Parse(s string) (Version, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Version{}, fmt.Errorf("version %q: want major.minor[.patch]", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return Version{}, fmt.Errorf("version %q: %q is not a number", s, p)
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2]}, nil
}

// FromImage reads the version from an image reference's tag ("ollama/ollama:0.24.0",
// "…:0.30.0-rocm"); ok is false for digests, "latest" and other non-version tags.
func FromImage(image string) (Version, bool) {
	ref := image
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	slash := strings.LastIndex(ref, "/")
	colon := strings.LastIndex(ref, ":")
	if colon < 0 || colon < slash {
		return Version{}, false
	}
	v, err := Parse(ref[colon+1:])
	return v, err == nil
}

// setting is one OLLAMA_* variable and the releases that read it.
type setting struct {
	name    string
	since   Version // first release that reads it (zero: every release we know)
	removed *Version
}

// Releases whose envconfig/config.go this table was checked against (git show
// <tag>:envconfig/config.go in ollama/ollama). Between 0.24.0 and 0.30.0 the exact release of a
// change is not pinned: a change is dated to the first checked release that has it.
var (
	// V0_24_0 is the newest release the Go module proxy serves: the tests run it.
	V0_24_0 = Version{0, 24, 0}
	// MultiuserCacheRemoved is the release that dropped OLLAMA_MULTIUSER_CACHE (and
	// OLLAMA_NEW_ENGINE): PR #16031.
	MultiuserCacheRemoved = Version{0, 30, 0}
	// V0_32_15 is the newest release when this table was made: the default image.
	V0_32_15 = Version{0, 32, 15}
)

var v0_30 = MultiuserCacheRemoved

// settings lists every OLLAMA_* variable the checked releases' envconfig reads, so Honours
// knows both the removals and the additions.
var settings = []setting{
	{name: "OLLAMA_AUTH"},
	{name: "OLLAMA_CONTEXT_LENGTH"},
	{name: "OLLAMA_DEBUG"},
	{name: "OLLAMA_DEBUG_LOG_REQUESTS"},
	{name: "OLLAMA_EDITOR"},
	{name: "OLLAMA_FLASH_ATTENTION"},
	{name: "OLLAMA_GO_TEMPLATE", since: v0_30},
	{name: "OLLAMA_GPU_OVERHEAD"},
	{name: "OLLAMA_HOST"},
	// Integrated GPUs (GB10's included) are admitted by default; an explicit false drops them.
	{name: "OLLAMA_IGPU_ENABLE", since: v0_30},
	{name: "OLLAMA_KEEP_ALIVE"},
	{name: "OLLAMA_KV_CACHE_TYPE"},
	{name: "OLLAMA_LLM_LIBRARY"},
	{name: "OLLAMA_LOAD_TIMEOUT"},
	{name: "OLLAMA_MAX_LOADED_MODELS"},
	{name: "OLLAMA_MAX_QUEUE"},
	{name: "OLLAMA_MAX_TRANSFER_STREAMS"},
	{name: "OLLAMA_MODELS"},
	{name: "OLLAMA_MULTIUSER_CACHE", removed: &v0_30},
	{name: "OLLAMA_NEW_ENGINE", removed: &v0_30},
	{name: "OLLAMA_NOHISTORY"},
	{name: "OLLAMA_NOPRUNE"},
	{name: "OLLAMA_NO_CLOUD"},
	{name: "OLLAMA_NUM_PARALLEL"},
	{name: "OLLAMA_ORIGINS"},
	{name: "OLLAMA_REMOTES"},
	{name: "OLLAMA_SCHED_SPREAD"},
	{name: "OLLAMA_VULKAN"},
}

// Honours says whether version v reads the variable name. Variables outside the table
// (not OLLAMA_*, or newer than the table) are assumed honoured.
func Honours(v Version, name string) bool {
	for _, s := range settings {
		if s.name != name {
			continue
		}
		if v.Less(s.since) {
			return false
		}
		return s.removed == nil || v.Less(*s.removed)
	}
	return true
}

// Known lists the variables version v reads, sorted.
func Known(v Version) []string {
	var out []string
	for _, s := range settings {
		if Honours(v, s.name) {
			out = append(out, s.name)
		}
	}
	return out
}
