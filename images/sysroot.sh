#!/usr/bin/env bash
# Creates (once) the Debian sid sysroot that holds every newer tool the guest
# image needs: rustc + rust-src + bindgen + clang for a Rust-enabled kernel,
# linux-source-7.2, and QEMU >= 10.1 for the vfio-user client.
#
# Why sid and not trixie + trixie-backports: the kernel's Rust support wants
# rustc, bindgen and libclang of one vintage; sid has rustc 1.97 / bindgen 0.72
# / clang 21 together, while trixie-backports mixes rustc 1.96 with bindgen
# 0.71.1 (the kernel's bare minimum) and clang 19. Sid moves, so we pin the
# suite and package *names* and record the versions actually installed in
# manifest.txt. The host's apt sources are never touched.
#
# Prints the sysroot path on stdout.
source "$(dirname "$0")/lib.sh"

SUITE=sid
MIRROR="${RANGEFAULT_MIRROR:-http://deb.debian.org/debian}"
PACKAGES=(rustc rust-src rustfmt rust-clippy bindgen clang lld llvm libclang-dev
    build-essential flex bison bc libelf-dev libssl-dev cpio xz-utils kmod
    busybox-static qemu-system-x86 linux-source-7.2)

key="$(inputs_hash "$0" "$IMAGES_DIR/lib.sh" "$SUITE" "${PACKAGES[*]}")"
dest="$RANGEFAULT_CACHE/sysroot-$key"
if [ -f "$dest/.complete" ]; then
    echo "$dest"; exit 0
fi

take_cache_lock
[ -f "$dest/.complete" ] && { echo "$dest"; exit 0; }
command -v debootstrap >/dev/null || {
    # From the host's own suite; a fresh machine's package lists may be empty or stale.
    log "installing debootstrap on the host (host's own suite)"
    apt-get update -qq
    apt-get install -y -qq debootstrap >/dev/null
}

partial="$dest.partial"
# A previous interrupted run may have left mounts behind.
for m in cache dev/pts dev sys proc; do umount -l "$partial/$m" 2>/dev/null || true; done
rm -rf "$partial"
log "sysroot: debootstrap $SUITE into $partial"
run_logged "$RANGEFAULT_CACHE/sysroot-debootstrap.log" "debootstrap $SUITE" \
    debootstrap --variant=minbase "$SUITE" "$partial" "$MIRROR"

cat >"$partial/etc/apt/apt.conf.d/90rangefault" <<'APT'
Acquire::Check-Valid-Until "false";
APT::Install-Recommends "false";
Dpkg::Use-Pty "0";
APT
log "sysroot: installing ${#PACKAGES[@]} packages (about 3 GB; a few minutes)"
run_logged "$RANGEFAULT_CACHE/sysroot-apt.log" "apt-get install" \
    in_sysroot "$partial" sh -c "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${PACKAGES[*]} && apt-get clean"

in_sysroot "$partial" dpkg-query -W -f '${Package} ${Version}\n' "${PACKAGES[@]}" >"$partial/manifest.txt"
log "sysroot versions:"; sed 's/^/    /' "$partial/manifest.txt" >&2
touch "$partial/.complete"
mv "$partial" "$dest"
# Older sysroots are dead weight (3 GB each).
drop_stale sysroot "" "$dest"
echo "$dest"
