//! The image cache's bookkeeping (`images/lib.sh`), run by bash over a scratch cache: keys do
//! not depend on how a script was invoked, and `drop_stale` removes exactly the stale outputs.

use std::path::Path;
use std::process::Command;

use rangefault_ci::repo;

/// Runs `script` in bash with `images/lib.sh` sourced, the cache at `cache`, from `cwd`.
fn with_lib(cache: &Path, cwd: &Path, script: &str) -> String {
    let lib = repo().join("images/lib.sh");
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}'; {script}", lib.display()))
        .env("RANGEFAULT_CACHE", cache)
        .current_dir(cwd)
        .output()
        .expect("bash");
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn a_script_keys_the_same_by_relative_and_absolute_path() {
    let cache = tempfile::tempdir().unwrap();
    let repo = repo().canonicalize().unwrap();
    let relative = with_lib(cache.path(), &repo, "inputs_hash images/kernel.sh x");
    let absolute = with_lib(
        cache.path(),
        Path::new("/"),
        &format!(
            "inputs_hash '{}' x",
            repo.join("images/kernel.sh").display()
        ),
    );
    assert_eq!(relative, absolute);
    assert_eq!(relative.len(), 16);
    // The content counts: another script, another key.
    let other = with_lib(cache.path(), &repo, "inputs_hash images/module.sh x");
    assert_ne!(relative, other);
}

#[test]
fn drop_stale_removes_other_keys_of_the_step_and_flavour_only() {
    let cache = tempfile::tempdir().unwrap();
    let dirs = [
        "kernel-debug-1111111111111111",
        "kernel-debug-2222222222222222",
        "kernel-debug-3333333333333333.partial",
        "kernel-bench-4444444444444444",
        "kernel-5555555555555555",
        "kernel-notes",
        "static-vmm-aaaaaaaaaaaaaaaa",
        "static-vmm-bbbbbbbbbbbbbbbb",
        "static-rangefault-probe-cccccccccccccccc",
        "nested-dddddddddddddddd",
        "nested-eeeeeeeeeeeeeeee",
    ];
    for dir in dirs {
        std::fs::create_dir(cache.path().join(dir)).unwrap();
    }
    let keep = |d: &str| cache.path().join(d).display().to_string();
    with_lib(
        cache.path(),
        cache.path(),
        &format!(
            "drop_stale kernel debug '{}' && drop_stale static-vmm '' '{}' && drop_stale nested '' '{}'",
            keep("kernel-debug-2222222222222222"),
            keep("static-vmm-bbbbbbbbbbbbbbbb"),
            keep("nested-eeeeeeeeeeeeeeee"),
        ),
    );
    let mut left: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "kernel-bench-4444444444444444",
            "kernel-debug-2222222222222222",
            "kernel-notes",
            "nested-eeeeeeeeeeeeeeee",
            "static-rangefault-probe-cccccccccccccccc",
            "static-vmm-bbbbbbbbbbbbbbbb",
        ]
    );
}
