#!/usr/bin/env bash
# Builds (once) the guest kernel from the sysroot's linux-source-7.2, with the
# project's mm patches (patches/series) applied, tinyconfig + kernel.config,
# LLVM=1 and Rust. Prints the kernel build tree path on stdout (bzImage at
# arch/x86/boot/bzImage inside it).
#
# RANGEFAULT_KERNEL_FLAVOUR picks the flavour: `debug` (default: lockdep,
# DEBUG_VM, what the boot tests run) or `bench` (kernel-bench.config on top:
# the debug options off, for benchmark numbers). Each flavour is its own
# cached tree (~10 min cold on 2 cores); only fault-bench asks for `bench`.
#
# The tree is built in place under its final, hash-keyed name; `.complete`
# marks success. An interrupted build is resumed by make on the next run
# (make never leaves a half-written target behind on SIGINT/SIGTERM), and a
# tree whose config step did not finish is wiped and started over.
source "$(dirname "$0")/lib.sh"

sysroot="$("$IMAGES_DIR/sysroot.sh")"
flavour="$(kernel_flavour)"
fragments=("$IMAGES_DIR/kernel.config")
[ "$flavour" = bench ] && fragments+=("$IMAGES_DIR/kernel-bench.config")
key="$(inputs_hash "$0" "$IMAGES_DIR/lib.sh" "${fragments[@]}" "$IMAGES_DIR/patches" \
    "$sysroot/manifest.txt")"
dest="$RANGEFAULT_CACHE/kernel-$flavour-$key"
if [ -f "$dest/.complete" ]; then
    echo "$dest"; exit 0
fi
take_cache_lock
[ -f "$dest/.complete" ] && { echo "$dest"; exit 0; }

inner="/cache/${dest##*/}"
jobs="$(nproc)"
if [ ! -f "$dest/.configured" ]; then
    rm -rf "$dest"; mkdir -p "$dest"
    log "kernel: unpacking linux-source-7.2"
    tarball="$(cd "$sysroot" && ls usr/src/linux-source-7.2*.tar.* | head -n1)"
    [ -n "$tarball" ] || die "no linux-source tarball in the sysroot"
    tar -C "$dest" -xf "$sysroot/$tarball"
    mv "$dest"/linux-source-*/ "$dest/src"
    apply_kernel_patches "$sysroot" "$dest/src"
    cat "${fragments[@]}" >"$dest/fragment.config"
    log "kernel: tinyconfig + fragment ($flavour)"
    in_sysroot "$sysroot" sh -euc "
        cd $inner/src
        make -s LLVM=1 tinyconfig
        scripts/kconfig/merge_config.sh -m .config $inner/fragment.config >/dev/null
        make -s LLVM=1 olddefconfig
        make -s LLVM=1 rustavailable
    " >&2
    # Verify every fragment symbol landed as asked (the last word on a symbol wins,
    # as in merge_config; `=n` means "is not set" or absent).
    bad=0
    while IFS= read -r line; do
        case "$line" in ''|'#'*) continue;; esac
        [ "$(grep -E "^${line%%=*}=" "$dest/fragment.config" | tail -n1)" = "$line" ] || continue
        if [ "${line#*=}" = n ]; then
            ! grep -qE "^${line%%=*}=[ym]" "$dest/src/.config" && continue
        else
            grep -qxF "$line" "$dest/src/.config" && continue
        fi
        log "config: wanted $line, got: $(grep -E "^(# )?${line%%=*}[= ]" "$dest/src/.config" || echo absent)"
        bad=1
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
    echo "kernel-flavour $flavour"
    echo "kernel-patches $(kernel_patches_id)"
} >"$dest/manifest.txt"
touch "$dest/.complete"
# Drop stale trees of this flavour (2+ GB each).
drop_stale kernel "$flavour" "$dest"
echo "$dest"
