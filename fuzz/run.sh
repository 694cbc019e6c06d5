#!/usr/bin/env bash
# Builds the fuzz targets and runs each from its checked-in corpus.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     default: 20 s each, every target
#
# SECONDS 0 runs until libFuzzer stops by itself: pass it a limit in
# FUZZ_ARGS (e.g. FUZZ_ARGS=-runs=10000000 for a campaign). New inputs go to
# a scratch directory, so the checked-in corpus only changes by hand
# (fuzz/README.md); crashes land in fuzz/artifacts/TARGET/ and fail the run.
#
# cargo-fuzz is installed once per version into the cache, outside the
# clone; the build directory lives there too, so a warm CI run only links.
set -euo pipefail
cd "$(dirname "$0")"

CARGO_FUZZ_VERSION=0.13.1
cache=${RANGEFAULT_CACHE:-$HOME/.cache/rangefault}
tool_root=$cache/tools/cargo-fuzz-$CARGO_FUZZ_VERSION
target_dir=$cache/fuzz-target
seconds=${1:-20}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(device_access guard_stream page_walk)
fi

if [ ! -x "$tool_root/bin/cargo-fuzz" ]; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into $tool_root"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$tool_root"
fi
cargo_fuzz=("$tool_root/bin/cargo-fuzz" fuzz)

# Stable Rust: no sanitizer (-s none; ASan needs nightly's -Zsanitizer),
# release code with debug assertions and overflow checks (-a).
build_flags=(-s none --release -a --target-dir "$target_dir")
"${cargo_fuzz[@]}" build "${build_flags[@]}"

# Inputs longer than these only slow a target down (fuzz/README.md).
max_len() {
    case $1 in
        device_access) echo 4096 ;;
        guard_stream) echo 8192 ;;
        page_walk) echo 20480 ;;
    esac
}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target" "artifacts/$target"
    echo "== fuzz $target (${seconds}s)"
    set +e
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of libFuzzer flags
    "${cargo_fuzz[@]}" run "${build_flags[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 \
        -print_final_stats=1 -artifact_prefix="artifacts/$target/" ${FUZZ_ARGS:-} 2>&1 |
        grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|Done |stat::number_of_executed_units|==[0-9]+== ERROR|SUMMARY|thread .* panicked)'
    # The pipe hides libFuzzer's exit status; PIPESTATUS keeps it.
    status=${PIPESTATUS[0]}
    set -e
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $target failed (exit $status); its input is in fuzz/artifacts/$target/" >&2
        exit "$status"
    fi
done
