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

# The static vmm is keyed by its sources (the workspace crates it is built
# from, per `cargo tree`, and the lock file): a fresh clone reuses it instead
# of a ~3 min static build.
crates=()
while IFS= read -r dir; do
    crates+=("$dir")
done < <(cargo tree --manifest-path "$REPO_DIR/Cargo.toml" -p vmm -e normal --prefix none \
    --format '{p}' | sed -n 's/.*(\(\/.*\))$/\1/p' | LC_ALL=C sort -u)
[ "${#crates[@]}" -gt 0 ] || die "cargo tree listed no local crates for vmm"
key="$(inputs_hash "$0" "$IMAGES_DIR/lib.sh" "$IMAGES_DIR/nested-init.sh" "$sysroot/manifest.txt" \
    "$REPO_DIR/Cargo.toml" "$REPO_DIR/Cargo.lock" "$(rustc --version)" \
    "${crates[@]/#$REPO_DIR\//crate }" "${crates[@]}")"
dest="$RANGEFAULT_CACHE/nested-$key"
if [ -f "$dest/outer.cpio" ]; then
    echo "$dest/outer.cpio"; exit 0
fi
take_cache_lock
[ -f "$dest/outer.cpio" ] && { echo "$dest/outer.cpio"; exit 0; }
# Like the guest tools: static glibc, built by the host's cargo (no musl target here).
log "nested: building a static vmm (cold: ~3 min on 2 cores)"
guest_target_dir="$REPO_DIR/target/guest"
RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols" cargo build --quiet --release \
    --manifest-path "$REPO_DIR/Cargo.toml" -p vmm \
    --target x86_64-unknown-linux-gnu --target-dir "$guest_target_dir"
vmm="$guest_target_dir/x86_64-unknown-linux-gnu/release/vmm"
partial="$dest.partial"
rm -rf "$partial"; mkdir -p "$partial/root"/{bin,dev,proc,sys,tmp,inner,nested}
root="$partial/root"
cp "$sysroot/usr/bin/busybox" "$root/bin/busybox"
cp "$IMAGES_DIR/nested-init.sh" "$root/init"; chmod 755 "$root/init"
cp "$vmm" "$root/bin/vmm"
in_sysroot "$sysroot" sh -c "cd /cache/${partial##*/}/root && find . | LC_ALL=C sort | cpio --quiet -o -H newc --owner 0:0 > ../outer.cpio"
rm -rf "$root"
rm -rf "$dest"; mv "$partial" "$dest"
for old in "$RANGEFAULT_CACHE"/nested-*; do
    [ "$old" = "$dest" ] || rm -rf "$old"
done
log "nested: outer initramfs $(du -h "$dest/outer.cpio" | cut -f1)"
echo "$dest/outer.cpio"
