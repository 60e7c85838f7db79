# Shared by the hack/build-*.sh scripts that `go install` a tool from the Go module proxy into
# the tool cache outside the clone. Source it; it defines functions only.

# cached_go_install NAME VERSION PACKAGE@VERSION LDFLAGS BIN_DIR
# Installs PACKAGE@VERSION as BIN_DIR/NAME-VERSION unless it is there already, and prints the
# binary's path as the last line of stdout (progress goes to stderr). The build goes to a
# temporary directory next to the result and is moved into place whole, so an interrupted build
# never leaves a half-written binary that a rerun would trust.
cached_go_install() {
  local name="$1" version="$2" pkg="$3" ldflags="$4" bin_dir="$5"
  local out="$bin_dir/$name-$version"
  if [[ -x "$out" ]]; then
    echo "$out"
    return 0
  fi
  mkdir -p "$bin_dir"
  local tmp
  tmp="$(mktemp -d "$bin_dir/.$name-build.XXXXXX")"
  echo "building $name $version from the module proxy (a few minutes cold)..." >&2
  local start=$SECONDS
  if ! GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS= \
    go install -trimpath -ldflags "$ldflags" "$pkg"; then
    rm -rf "$tmp"
    return 1
  fi
  # go install names a binary after its package path's last element, or the one before a
  # major-version suffix (sigs.k8s.io/kustomize/kustomize/v5 -> kustomize).
  local path="${pkg%@*}" exe
  exe="$(basename "$path")"
  if [[ "$exe" =~ ^v[0-9]+$ ]]; then
    exe="$(basename "$(dirname "$path")")"
  fi
  if ! mv "$tmp/$exe" "$out"; then
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$tmp"
  echo "built $out in $((SECONDS - start))s" >&2
  echo "$out"
}
