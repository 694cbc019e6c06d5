#!/usr/bin/env bash
# Packs the guest initramfs: static busybox, rangefault.ko, the guest tools
# (static Rust binaries built by the host's cargo) and /init.
# Prints the path of initramfs.cpio.
source "$(dirname "$0")/lib.sh"

module="$("$IMAGES_DIR/module.sh")"
kernel="$("$IMAGES_DIR/kernel.sh")"
sysroot="$("$IMAGES_DIR/sysroot.sh")"

# The guest tool: a static binary, cached by its sources (static-tool.sh).
probe="$("$IMAGES_DIR/static-tool.sh" rangefault-probe)"

key="$(inputs_hash "$0" "$IMAGES_DIR/lib.sh" "$IMAGES_DIR/init.sh" "$kernel/manifest.txt" \
    "$module/rangefault.ko" "$probe")"
flavour="$(kernel_flavour)"
dest="$RANGEFAULT_CACHE/initramfs-$flavour-$key"
if [ -f "$dest/initramfs.cpio" ]; then
    echo "$dest/initramfs.cpio"; exit 0
fi
take_cache_lock
partial="$dest.partial"
rm -rf "$partial"; mkdir -p "$partial/root"/{bin,dev,proc,sys,tmp,lib/modules}
root="$partial/root"
cp "$sysroot/usr/bin/busybox" "$root/bin/busybox"
cp "$IMAGES_DIR/init.sh" "$root/init"; chmod 755 "$root/init"
cp "$module/rangefault.ko" "$root/lib/modules/"
cp "$probe" "$root/bin/"
# The kernel's own mm selftests that reach the paths our patches touch, built
# static from the same tree: pfnmap (run against /dev/rangefault0) and
# mremap_test.
log "initramfs: building mm selftests (pfnmap, mremap_test) from the kernel tree"
in_sysroot "$sysroot" sh -euc "
    cd /cache/${kernel##*/}/src/tools/testing/selftests/mm
    for t in pfnmap mremap_test; do
        gcc -static -O2 -I.. -isystem ../../../include/uapi -isystem ../../../../usr/include \
            \$t.c vm_util.c -o /cache/${partial##*/}/root/bin/\$t -lm
    done
" >&2 || die "building the kernel's mm selftests failed"
in_sysroot "$sysroot" sh -c "cd /cache/${partial##*/}/root && find . | LC_ALL=C sort | cpio --quiet -o -H newc --owner 0:0 > ../initramfs.cpio"
rm -rf "$root"
rm -rf "$dest"; mv "$partial" "$dest"
drop_stale initramfs "$flavour" "$dest"
log "initramfs: $(du -h "$dest/initramfs.cpio" | cut -f1)"
echo "$dest/initramfs.cpio"
