#!/usr/bin/env bash
# Builds (once) a static x86-64 binary of a workspace package for the guests
# and prints its path: static glibc, built by the host's cargo (the host
# toolchain has no musl target and cannot download one; glibc's static libc.a
# serves pure-Rust tools). Cached under static-<package>-<key>, the key being
# the workspace crates the package is built from (per `cargo tree`), the lock
# file and the compiler: a fresh clone reuses the binary instead of
# recompiling it.
#   static-tool.sh rangefault-probe    the guest tool (initramfs.sh)
#   static-tool.sh vmm                 the outer guest's vmm (nested.sh)
source "$(dirname "$0")/lib.sh"

package="${1:?usage: static-tool.sh PACKAGE}"
crates=()
while IFS= read -r dir; do
    crates+=("$dir")
done < <(cargo tree --manifest-path "$REPO_DIR/Cargo.toml" -p "$package" -e normal --prefix none \
    --format '{p}' | sed -n 's/^[^ ]* v[^ ]* (\(\/[^)]*\)).*/\1/p' | LC_ALL=C sort -u)
[ "${#crates[@]}" -gt 0 ] || die "cargo tree listed no local crates for $package"
# Local crates only, each a directory of this checkout: anything else would
# put this checkout's path into the key.
for dir in "${crates[@]}"; do
    [ -d "$dir" ] && [ "${dir#"$REPO_DIR"/}" != "$dir" ] || die "cargo tree gave '$dir', not a crate of $REPO_DIR"
done
flags="-C target-feature=+crt-static -C strip=symbols"
key="$(inputs_hash "$0" "$REPO_DIR/Cargo.toml" "$REPO_DIR/Cargo.lock" "$(rustc --version)" "$flags" \
    "${crates[@]/#$REPO_DIR\//crate }" "${crates[@]}")"
dest="$RANGEFAULT_CACHE/static-$package-$key"
if [ -f "$dest/$package" ]; then
    echo "$dest/$package"; exit 0
fi
# One build at a time (two vmm runs may start together); the one that waited finds the
# binary the other built.
take_cache_lock
if [ -f "$dest/$package" ]; then
    echo "$dest/$package"; exit 0
fi
log "static $package: building (cargo, crt-static)"
target_dir="$REPO_DIR/target/guest"
RUSTFLAGS="$flags" cargo build --quiet --release --manifest-path "$REPO_DIR/Cargo.toml" \
    -p "$package" --target x86_64-unknown-linux-gnu --target-dir "$target_dir"
partial="$dest.partial"
rm -rf "$partial"; mkdir -p "$partial"
cp "$target_dir/x86_64-unknown-linux-gnu/release/$package" "$partial/"
rm -rf "$dest"; mv "$partial" "$dest"
drop_stale "static-$package" "" "$dest"
echo "$dest/$package"
