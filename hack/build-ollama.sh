#!/usr/bin/env bash
# Builds Ollama (CPU only) from the Go module proxy, the one source these machines can reach.
# Module zips drop every vendor/ folder, and llama.cpp's vendored headers live in one, so they
# are taken from other modules on the proxy, close enough to what llama.cpp vendors:
#   nlohmann/json.hpp (3.11.3), stb/stb_image.h (2.30) <- github.com/ollama/ollama@v0.6.5
#                                                          llama/llama.cpp/common/
#   miniaudio/miniaudio.h (0.11.23)                    <- github.com/gen2brain/malgo@v0.11.24
#   nlohmann/json_fwd.hpp                              <- one line including json.hpp
# and handed to cgo through CGO_CPPFLAGS. Tested with OLLAMA_VERSION=0.24.0 only.
#
# Needs Go, gcc, g++ and libc headers (Debian: apt-get install gcc g++ libc6-dev
# ca-certificates); the CPU ggml backend is compiled through cgo, no cmake. Cold: ~6.5 min on
# 2 cores, ~600 MB of Go build cache, a 40 MB binary.
#
# Output: $OLLAMA_BIN_DIR/ollama (default ${XDG_CACHE_HOME:-~/.cache}/rag-operator/ollama-v$VERSION),
# its path printed as the last line. Cached: a rerun with the binary present returns at once.
set -euo pipefail

OLLAMA_VERSION="${OLLAMA_VERSION:-0.24.0}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/rag-operator"
OUT="${OLLAMA_BIN_DIR:-$CACHE_ROOT/ollama-v$OLLAMA_VERSION}"

if [[ -x "$OUT/ollama" ]]; then
  echo "$OUT/ollama"
  exit 0
fi

for tool in go gcc g++; do
  command -v "$tool" >/dev/null || { echo "build-ollama: $tool not found (apt-get install gcc g++ libc6-dev)" >&2; exit 1; }
done

export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=1

work="$CACHE_ROOT/src/ollama-v$OLLAMA_VERSION"
inc="$work/include"
mkdir -p "$work" "$OUT" "$inc/nlohmann" "$inc/stb" "$inc/miniaudio"
cd "$work"

# A throwaway module whose only requirement is Ollama: minimal version selection then picks
# exactly the dependency versions Ollama's own go.mod pins.
printf 'module local/ollama-build\n\ngo 1.26.0\n' > go.mod
rm -f go.sum
go get "github.com/ollama/ollama@v$OLLAMA_VERSION" >&2

moddir() { go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'; }
headers_from="$(moddir github.com/ollama/ollama@v0.6.5)/llama/llama.cpp/common"
audio_from="$(moddir github.com/gen2brain/malgo@v0.11.24)"
cp "$headers_from/json.hpp" "$inc/nlohmann/json.hpp"
cp "$headers_from/stb_image.h" "$inc/stb/stb_image.h"
cp "$audio_from/miniaudio.h" "$inc/miniaudio/miniaudio.h"
echo '#include "json.hpp"' > "$inc/nlohmann/json_fwd.hpp"
chmod -R u+w "$inc"

export CGO_CPPFLAGS="-I$inc ${CGO_CPPFLAGS:-}"
go build -trimpath -o "$OUT/ollama.tmp" \
  -ldflags "-s -w -X github.com/ollama/ollama/version.Version=$OLLAMA_VERSION" \
  "github.com/ollama/ollama" >&2
mv "$OUT/ollama.tmp" "$OUT/ollama"
echo "$OUT/ollama"
