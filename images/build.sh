#!/usr/bin/env bash
# Builds (or finds in the cache) everything a guest boot needs and prints it as
# key=value lines on stdout; progress goes to stderr.
#   build.sh          sysroot, kernel, module, initramfs, QEMU
#   build.sh qemu     only the sysroot's QEMU (for user-supplied kernels)
#   build.sh nested   all of the above, and the outer initramfs of kvm-nested
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || die "the image build needs root (debootstrap and chroot into the sysroot)"
sysroot="$("$IMAGES_DIR/sysroot.sh")"

# QEMU runs straight from the sysroot through the sysroot's own dynamic
# loader, so the host keeps its own (older) libraries untouched.
qemu="$RANGEFAULT_CACHE/bin/qemu-system-x86_64"
mkdir -p "${qemu%/*}"
cat >"$qemu.tmp.$$" <<WRAP
#!/bin/sh
exec "$sysroot/lib64/ld-linux-x86-64.so.2" \\
    --library-path "$sysroot/usr/lib/x86_64-linux-gnu:$sysroot/lib/x86_64-linux-gnu" \\
    "$sysroot/usr/bin/qemu-system-x86_64" \\
    -L "$sysroot/usr/share/qemu" -L "$sysroot/usr/share/seabios" "\$@"
WRAP
chmod 755 "$qemu.tmp.$$"; mv "$qemu.tmp.$$" "$qemu"
echo "qemu=$qemu"
if [ "${1:-all}" = qemu ]; then
    echo "manifest=$sysroot/manifest.txt"
    exit 0
fi

kernel="$("$IMAGES_DIR/kernel.sh")"
initramfs="$("$IMAGES_DIR/initramfs.sh")"
echo "kernel=$kernel/src/arch/x86/boot/bzImage"
echo "kernel_release=$(cat "$kernel/src/include/config/kernel.release")"
echo "initramfs=$initramfs"
echo "manifest=$kernel/manifest.txt"
if [ "${1:-all}" = nested ]; then
    echo "nested_initramfs=$("$IMAGES_DIR/nested.sh")"
fi
