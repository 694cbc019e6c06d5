#!/usr/bin/env bash
# Builds guest-driver/module (the out-of-tree Rust kernel module) against the
# cached kernel tree. Prints the directory holding rangefault.ko.
source "$(dirname "$0")/lib.sh"

kernel="$("$IMAGES_DIR/kernel.sh")"
src="$REPO_DIR/guest-driver/module"
key="$(inputs_hash "$0" "$IMAGES_DIR/lib.sh" "$kernel/manifest.txt" "$src")"
flavour="$(kernel_flavour)"
dest="$RANGEFAULT_CACHE/module-$flavour-$key"
if [ -f "$dest/rangefault.ko" ]; then
    echo "$dest"; exit 0
fi
take_cache_lock
sysroot="$("$IMAGES_DIR/sysroot.sh")"
partial="$dest.partial"
rm -rf "$RANGEFAULT_CACHE"/module-"$flavour"-*.partial; mkdir -p "$partial"
cp -r "$src"/. "$partial"/
log "module: building rangefault.ko"
# CLIPPY=1: the kernel's clippy configuration runs on the module; any warning fails below.
if ! in_sysroot "$sysroot" make -C "/cache/${kernel##*/}/src" M="/cache/${partial##*/}" LLVM=1 CLIPPY=1 modules \
        >"$partial/build.log" 2>&1; then
    cat "$partial/build.log" >&2
    die "module build failed"
fi
# Warnings (rustc, clippy) in our module are errors: the kernel tree builds with -Werror.
if grep -E '^(warning|error)' "$partial/build.log" >&2; then
    die "module build printed warnings"
fi
rm -rf "$dest"; mv "$partial" "$dest"
drop_stale module "$flavour" "$dest"
echo "$dest"
