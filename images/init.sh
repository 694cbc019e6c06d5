#!/bin/busybox sh
# /init of the rangefault guest: mount the basics, load the driver, run the
# scenario named on the kernel command line, report, power off.
# Lines starting with RANGEFAULT- are the protocol the host's vmm parses.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp

scenario=skeleton
guest_cmd=
# How to end: `poweroff` (ACPI, QEMU's q35) or `reboot` (the KVM engine's
# machine has no ACPI; it ends the run when the guest resets through the i8042).
end=poweroff
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        rangefault.scenario=*) scenario="${arg#*=}" ;;
        rangefault.cmd=*) guest_cmd="$(echo "${arg#*=}" | base64 -d)" ;;
        rangefault.end=reboot) end=reboot ;;
    esac
done

finish() {
    echo "RANGEFAULT-EXIT $1"
    sync
    "$end" -f
}

if ! insmod /lib/modules/rangefault.ko; then
    echo "RANGEFAULT-ERROR insmod rangefault.ko failed"
    finish 3
fi

rc=0
if [ -n "$guest_cmd" ]; then
    sh -c "$guest_cmd" || rc=$?
else
    /bin/rangefault-probe "$scenario" || rc=$?
fi
finish "$rc"
