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
vfio_pci=
# Per-CPU trace buffer in KiB when `vmm run --trace` asked for a fault trace.
trace_kb=
# How to end: `poweroff` (ACPI, QEMU's q35) or `reboot` (the KVM engine's
# machine has no ACPI; it ends the run when the guest resets through the i8042).
end=poweroff
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        rangefault.scenario=*) scenario="${arg#*=}" ;;
        rangefault.cmd=*) guest_cmd="$(echo "${arg#*=}" | base64 -d)" ;;
        rangefault.end=reboot) end=reboot ;;
        rangefault.trace=*) trace_kb="${arg#*=}" ;;
        rangefault.vfio_pci=*) vfio_pci="$(echo "${arg#*=}" | tr , ' ')" ;;
    esac
done

tracing=/sys/kernel/tracing

# The driver's fault events and the kernel's own user page-fault exceptions,
# with each task's process (tgid) recorded, on a clock that is monotonic
# across CPUs (a thread's events stay in order when it migrates).
trace_start() {
    mount -t tracefs tracefs "$tracing" &&
        echo 0 > "$tracing/tracing_on" &&
        echo "$trace_kb" > "$tracing/buffer_size_kb" &&
        echo global > "$tracing/trace_clock" &&
        echo 1 > "$tracing/options/record-tgid" &&
        echo 1 > "$tracing/events/rangefault/enable" &&
        echo 1 > "$tracing/events/exceptions/page_fault_user/enable" &&
        echo > "$tracing/trace" &&
        echo 1 > "$tracing/tracing_on"
}

# The trace, gzipped, on the second serial port (a file on the host): raw, so
# the tty passes the bytes as they are.
trace_collect() {
    echo 0 > "$tracing/tracing_on"
    exec 3> /dev/ttyS1
    stty raw -echo <&3 && gzip -c < "$tracing/trace" >&3 ||
        echo "RANGEFAULT-ERROR cannot write the fault trace to ttyS1"
    # Closing the tty waits until its output has drained.
    exec 3>&-
}

finish() {
    [ -n "$trace_kb" ] && trace_collect
    echo "RANGEFAULT-EXIT $1"
    sync
    "$end" -f
}

# Devices `vmm run --device ...,driver=vfio-pci` gave to vfio-pci: claimed for it before our
# driver loads, so rangefault never binds them (driver_override admits only vfio-pci).
for bdf in $vfio_pci; do
    dev="/sys/bus/pci/devices/$bdf"
    if ! { echo vfio-pci > "$dev/driver_override" &&
        echo "$bdf" > /sys/bus/pci/drivers_probe &&
        [ "$(basename "$(readlink "$dev/driver")")" = vfio-pci ]; }; then
        echo "RANGEFAULT-ERROR cannot bind $bdf to vfio-pci"
        finish 3
    fi
    echo "rangefault-init: $bdf bound to vfio-pci (iommu group $(basename "$(readlink "$dev/iommu_group")"))"
done

if ! insmod /lib/modules/rangefault.ko; then
    echo "RANGEFAULT-ERROR insmod rangefault.ko failed"
    finish 3
fi

if [ -n "$trace_kb" ] && ! trace_start; then
    echo "RANGEFAULT-ERROR cannot enable the fault trace in $tracing"
    trace_kb=
fi

# The run as one slice of the trace (ATrace markers, as the probe's phases).
mark() { [ -n "$trace_kb" ] && echo "$1" > "$tracing/trace_marker"; }

rc=0
if [ -n "$guest_cmd" ]; then
    mark "B|$$|guest-cmd"
    sh -c "$guest_cmd" || rc=$?
else
    mark "B|$$|scenario $scenario"
    /bin/rangefault-probe "$scenario" || rc=$?
fi
mark "E|$$"
finish "$rc"
