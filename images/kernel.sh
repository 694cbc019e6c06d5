#!/usr/bin/env bash
# Builds (once) the guest kernel from the sysroot's linux-source-7.2 with
# tinyconfig + kernel.config, LLVM=1 and Rust. Prints the kernel build tree
# path on stdout (bzImage at arch/x86/boot/bzImage inside it).
#
# The tree is built in place under its final, hash-keyed name; `.complete`
# marks success. An interrupted build is resumed by make on the next run
# (make never leaves a half-written target behind on SIGINT/SIGTERM), and a
# tree whose config step did not finish is wiped and started over.
source "$(dirname "$0")/lib.sh"

sysroot="$("$IMAGES_DIR/sysroot.sh")"
key="$(inputs_hash "$0" "$IMAGES_DIR/lib.sh" "$IMAGES_DIR/kernel.config" "$sysroot/manifest.txt")"
dest="$RANGEFAULT_CACHE/kernel-$key"
if [ -f "$dest/.complete" ]; then
    echo "$dest"; exit 0
fi
take_cache_lock
[ -f "$dest/.complete" ] && { echo "$dest"; exit 0; }

inner="/cache/kernel-$key"
jobs="$(nproc)"
if [ ! -f "$dest/.configured" ]; then
    rm -rf "$dest"; mkdir -p "$dest"
    log "kernel: unpacking linux-source-7.2"
    tarball="$(cd "$sysroot" && ls usr/src/linux-source-7.2*.tar.* | head -n1)"
    [ -n "$tarball" ] || die "no linux-source tarball in the sysroot"
    tar -C "$dest" -xf "$sysroot/$tarball"
    mv "$dest"/linux-source-*/ "$dest/src"
    cp "$IMAGES_DIR/kernel.config" "$dest/fragment.config"
    log "kernel: tinyconfig + fragment"
    in_sysroot "$sysroot" sh -euc "
        cd $inner/src
        make -s LLVM=1 tinyconfig
        scripts/kconfig/merge_config.sh -m .config $inner/fragment.config >/dev/null
        make -s LLVM=1 olddefconfig
        make -s LLVM=1 rustavailable
    " >&2
    # Verify every fragment symbol landed as asked.
    bad=0
    while IFS= read -r line; do
        case "$line" in ''|'#'*) continue;; esac
        grep -qxF "$line" "$dest/src/.config" || { log "config: wanted $line, got: $(grep -E "^(# )?${line%%=*}[= ]" "$dest/src/.config" || echo absent)"; bad=1; }
    done <"$dest/fragment.config"
    [ "$bad" = 0 ] || die "kernel config fragment not satisfied (see above)"
    touch "$dest/.configured"
fi

log "kernel: building with -j$jobs (cold: ~15 min on 2 cores; progress every 15 s)"
run_logged "$dest/build.log" "kernel make" \
    in_sysroot "$sysroot" make -C "$inner/src" LLVM=1 -j"$jobs" all
{
    cat "$sysroot/manifest.txt"
    echo "kernel-release $(cat "$dest/src/include/config/kernel.release")"
} >"$dest/manifest.txt"
touch "$dest/.complete"
# Drop stale trees (2+ GB each).
for old in "$RANGEFAULT_CACHE"/kernel-*; do
    [ "$old" = "$dest" ] || [ ! -d "$old" ] || rm -rf "$old"
done
echo "$dest"
