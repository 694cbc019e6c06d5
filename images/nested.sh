#!/usr/bin/env bash
# Packs the initramfs of the *outer* guest of `vmm run --engine kvm-nested`:
# static busybox, a static vmm and /init (nested-init.sh). The outer guest
# boots the same kernel under QEMU TCG (-cpu max: svm + npt, so its kvm_amd
# has a hardware-style /dev/kvm) and runs `vmm run --engine auto` inside.
# The inner guest's kernel and initramfs, and the inner run's arguments, are
# appended per run by the host's vmm (/inner/*, /nested/args), so this
# archive does not change with them. Prints the path of outer.cpio.
source "$(dirname "$0")/lib.sh"

sysroot="$("$IMAGES_DIR/sysroot.sh")"

# The static vmm, cached by its sources (static-tool.sh).
vmm="$("$IMAGES_DIR/static-tool.sh" vmm)"
key="$(inputs_hash "$0" "$IMAGES_DIR/lib.sh" "$IMAGES_DIR/nested-init.sh" "$sysroot/manifest.txt" "$vmm")"
dest="$RANGEFAULT_CACHE/nested-$key"
if [ -f "$dest/outer.cpio" ]; then
    echo "$dest/outer.cpio"; exit 0
fi
take_cache_lock
[ -f "$dest/outer.cpio" ] && { echo "$dest/outer.cpio"; exit 0; }
partial="$dest.partial"
rm -rf "$partial"; mkdir -p "$partial/root"/{bin,dev,proc,sys,tmp,inner,nested}
root="$partial/root"
cp "$sysroot/usr/bin/busybox" "$root/bin/busybox"
cp "$IMAGES_DIR/nested-init.sh" "$root/init"; chmod 755 "$root/init"
cp "$vmm" "$root/bin/vmm"
in_sysroot "$sysroot" sh -c "cd /cache/${partial##*/}/root && find . | LC_ALL=C sort | cpio --quiet -o -H newc --owner 0:0 > ../outer.cpio"
rm -rf "$root"
rm -rf "$dest"; mv "$partial" "$dest"
drop_stale nested "" "$dest"
log "nested: outer initramfs $(du -h "$dest/outer.cpio" | cut -f1)"
echo "$dest/outer.cpio"
