#!/bin/busybox sh
# /init of the outer guest of `vmm run --engine kvm-nested`: run the static
# vmm on this guest's KVM (kvm_amd on TCG's nested SVM) with the arguments the
# host's vmm appended (/nested/args, one per line), send the inner report out
# on ttyS1 (a file on the host), power off (ACPI: this guest is QEMU's q35).
# The inner run's console and summary go to this console as they happen.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp

# Huge pages for the VRAM memfd (shmem) as for anonymous guest RAM: KVM
# then maps them with 2M nested-page-table entries, and a first touch of
# inner VRAM costs one nested page fault per 2 MiB instead of per 4 KiB
# (each one a world switch that TCG emulates).
echo within_size >/sys/kernel/mm/transparent_hugepage/shmem_enabled

set --
while IFS= read -r arg; do
    set -- "$@" "$arg"
done </nested/args

if [ -c /dev/kvm ]; then
    echo "rangefault-nested: /dev/kvm is here ($(grep -ow -m1 -e svm -e vmx /proc/cpuinfo | head -n1))"
else
    echo "rangefault-nested: no /dev/kvm in the outer guest"
fi
/bin/vmm run --kernel /inner/bzImage --initramfs /inner/initramfs.cpio \
    --report /tmp/inner.json "$@"
rc=$?
echo "rangefault-nested: inner vmm exited $rc"
if [ -f /tmp/inner.json ]; then
    cat /tmp/inner.json >/dev/ttyS1
fi
sync
poweroff -f
