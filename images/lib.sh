# Shared helpers for the image pipeline. Sourced, never run.
#
# Every artifact lives under $RANGEFAULT_CACHE in a directory named
# <step>-<hash of its inputs>. A step builds into <dir>.partial and renames it
# into place only when it finished, so an interrupted build never poisons the
# cache: the next run sees no final directory and starts that step again.

set -euo pipefail

RANGEFAULT_CACHE="${RANGEFAULT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rangefault}"
IMAGES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$IMAGES_DIR/.." && pwd)"
mkdir -p "$RANGEFAULT_CACHE"

log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Hash of files and literal strings, in argument order.
inputs_hash() {
    local arg
    for arg in "$@"; do
        if [ -f "$arg" ]; then
            # Absolute first: a script run by hand as `bash images/kernel.sh` passes a relative
            # $0, which must key the same as build.sh's absolute call.
            case "$arg" in
                /*) ;;
                *) arg="$(cd "$(dirname "$arg")" && pwd)/${arg##*/}" ;;
            esac
            # Name repo files by their repo path, cache files (manifests, build outputs) by their
            # base name: a cache file's directory carries another step's hash, and keying on it
            # would rebuild this step whenever that step's *script* changed, not its output.
            case "$arg" in
                "$REPO_DIR"/*) printf 'file %s\n' "${arg#"$REPO_DIR"/}" ;;
                *) printf 'file %s\n' "${arg##*/}" ;;
            esac
            cat "$arg"
        elif [ -d "$arg" ]; then
            (cd "$arg" && find . -type f \
                -not -path './target/*' -not -name '*.o' -not -name '*.ko' \
                -not -name '.*.cmd' -not -name '*.mod*' -not -name 'Module.symvers' \
                -not -name 'modules.order' | LC_ALL=C sort | while read -r f; do
                    printf 'file %s\n' "$f"; cat "$f"; done)
        else
            printf 'str %s\n' "$arg"
        fi
    done | sha256sum | cut -c1-16
}

# Serialise concurrent builds of the same cache (two CI jobs, a user + CI).
take_cache_lock() {
    exec 9>"$RANGEFAULT_CACHE/.lock"
    if ! flock -n 9; then
        log "another build holds $RANGEFAULT_CACHE/.lock; waiting"
        flock 9
    fi
}

# Runs "$@" with periodic progress lines so long silent steps show life.
# Output goes to $LOG; the last lines are shown on failure.
run_logged() {
    local logfile="$1"; shift
    local what="$1"; shift
    local start=$SECONDS
    "$@" >"$logfile" 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 15
        if kill -0 "$pid" 2>/dev/null; then
            log "$what: $((SECONDS - start))s, $(wc -l <"$logfile") log lines, last: $(tail -c 300 "$logfile" | tail -n1 | cut -c1-100)"
        fi
    done
    if ! wait "$pid"; then
        tail -n 40 "$logfile" >&2
        die "$what failed after $((SECONDS - start))s (full log: $logfile)"
    fi
    log "$what: done in $((SECONDS - start))s"
}

# chroot into the sysroot with /proc, /sys, /dev and the cache mounted;
# the mounts are undone whatever happens.
in_sysroot() {
    local root="$1"; shift
    local mounts=()
    local m
    mkdir -p "$root/cache"
    for m in proc sys dev dev/pts cache; do
        local src="/$m"
        [ "$m" = cache ] && src="$RANGEFAULT_CACHE"
        mount --bind "$src" "$root/$m"
        mounts=("$root/$m" "${mounts[@]}")
    done
    local rc=0
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        chroot "$root" "$@" || rc=$?
    for m in "${mounts[@]}"; do umount -l "$m" || true; done
    return $rc
}

# The kernel flavour asked for: debug (default) or bench.
kernel_flavour() {
    local flavour="${RANGEFAULT_KERNEL_FLAVOUR:-debug}"
    case "$flavour" in
        debug|bench) echo "$flavour" ;;
        *) die "RANGEFAULT_KERNEL_FLAVOUR must be debug or bench, not '$flavour'" ;;
    esac
}

# "<sha256 of the series' patches, 12 hex> <patch names, comma-separated>":
# which mm patches a kernel carries, for manifests and reports.
kernel_patches_id() {
    local names
    names="$(grep -v '^#' "$IMAGES_DIR/patches/series" | grep . | paste -sd, -)"
    echo "$(inputs_hash "$IMAGES_DIR/patches" | cut -c1-12) ${names:-none}"
}

# Applies patches/series to the kernel tree $2 (a path under $RANGEFAULT_CACHE),
# with the sysroot $1's patch(1), each exactly (no fuzz): a sid update that
# moves the context fails here, loudly, instead of misapplying.
apply_kernel_patches() {
    local sysroot="$1" tree="/cache/${2#"$RANGEFAULT_CACHE"/}" patch
    mkdir -p "$RANGEFAULT_CACHE/patches.tmp"
    cp "$IMAGES_DIR"/patches/*.patch "$RANGEFAULT_CACHE/patches.tmp/"
    while IFS= read -r patch; do
        case "$patch" in ''|'#'*) continue;; esac
        log "kernel: applying $patch"
        in_sysroot "$sysroot" patch -d "$tree" -p1 --forward --batch --fuzz=0 --quiet \
            -i "/cache/patches.tmp/$patch" >&2 \
            || die "kernel patch $patch does not apply to linux-source (did sid move it?); refresh images/patches/"
    done <"$IMAGES_DIR/patches/series"
    rm -rf "$RANGEFAULT_CACHE/patches.tmp"
}

# Whether $1 is a cache key (16 hex digits, as inputs_hash prints).
is_key() {
    [ "${#1}" -eq 16 ] && [ -z "${1//[0-9a-f]/}" ]
}

# Removes step $1's cached outputs other than $3: those of flavour $2 (any key, a leftover
# .partial included), and the unflavoured ones (<step>-<key>: a step without flavours, $2
# empty, or one from before flavours existed). A sysroot with its /proc mounted (a chroot
# in use) stays.
drop_stale() {
    local step="$1" flavour="$2" keep="$3" old rest
    for old in "$RANGEFAULT_CACHE/$step-"*; do
        [ -e "$old" ] && [ "$old" != "$keep" ] || continue
        rest="${old##*/"$step"-}"
        if [ -n "$flavour" ] && [ "${rest#"$flavour"-}" != "$rest" ] || is_key "$rest"; then
            [ -d "$old/proc" ] && mountpoint -q "$old/proc" && continue
            rm -rf "$old"
        fi
    done
}
