//! The kernel module cannot use crates, so it keeps its own copy of the ABI
//! (`guest-driver/module/abi.rs`, `uapi.rs`, and `Strategy` in `window.rs`). This test compiles
//! those files on the host and fails on any constant, request number, struct size or field offset
//! that differs from this crate, and on any constant or field the module declares that the test
//! does not compare.

// The module's `uapi.rs` names `kernel::ioctl` and `kernel::transmute`; this test crate stands in
// for `kernel` (see [`ioctl`], [`transmute`]).
extern crate self as kernel;

use std::mem::{align_of, offset_of, size_of};

use rangefault_abi as abi;

#[path = "../../guest-driver/module/abi.rs"]
mod kabi;

#[path = "../../guest-driver/module/uapi.rs"]
#[allow(dead_code)]
mod kuapi;

#[path = "../../guest-driver/module/window.rs"]
#[allow(dead_code)]
mod kwindow;

const MODULE_ABI: &str = include_str!("../../guest-driver/module/abi.rs");
const MODULE_UAPI: &str = include_str!("../../guest-driver/module/uapi.rs");

/// The kernel's `_IOC` helpers (`rust/kernel/ioctl.rs`: asm-generic, which x86 uses), written out
/// here rather than taken from `rangefault_abi::uapi::ioc`, so that a wrong encoding there shows.
#[allow(non_snake_case)]
pub mod ioctl {
    const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
        assert!(nr <= 0xff && ty <= 0xff && size < 1 << 14);
        (dir << 30) | (ty << 8) | nr | ((size as u32) << 16)
    }
    pub const fn _IO(ty: u32, nr: u32) -> u32 {
        ioc(0, ty, nr, 0)
    }
    pub const fn _IOW<T>(ty: u32, nr: u32) -> u32 {
        ioc(1, ty, nr, core::mem::size_of::<T>())
    }
    pub const fn _IOR<T>(ty: u32, nr: u32) -> u32 {
        ioc(2, ty, nr, core::mem::size_of::<T>())
    }
    pub const fn _IOWR<T>(ty: u32, nr: u32) -> u32 {
        ioc(3, ty, nr, core::mem::size_of::<T>())
    }
}

/// The kernel's marker traits the module implements for its ioctl structs.
pub mod transmute {
    /// # Safety
    /// As the kernel's: every byte of the value is initialised.
    pub unsafe trait AsBytes {}
    /// # Safety
    /// As the kernel's: any bit pattern is a valid value.
    pub unsafe trait FromBytes {}
}

/// Asserts that each named constant has the same value in the module's copy `$k` and in this
/// crate `$a` (the module's offsets are `usize`, its BAR indices `u32`: compared as `u64`), and
/// records its name in `$seen`.
macro_rules! same_values {
    ($seen:ident, $k:ident, $a:path: $($($seg:ident)::+),+ $(,)?) => {{
        use $a as a;
        $(
            let name = stringify!($($seg)::+).replace(' ', "");
            assert_eq!($k::$($seg)::+ as u64, a::$($seg)::+ as u64, "{name}");
            $seen.push(name);
        )+
    }};
}

/// Asserts that a struct has the same size and alignment in the module and in this crate, and
/// each named field the same offset and size; records `Struct.field` in `$seen`.
macro_rules! same_layout {
    ($seen:ident, $name:ident { $($field:ident),+ $(,)? }) => {{
        type K = kuapi::$name;
        type A = abi::uapi::$name;
        let name = stringify!($name);
        assert_eq!(size_of::<K>(), size_of::<A>(), "size of {name}");
        assert_eq!(align_of::<K>(), align_of::<A>(), "alignment of {name}");
        $(
            assert_eq!(offset_of!(K, $field), offset_of!(A, $field), "{name}.{}", stringify!($field));
            assert_eq!(
                size_of_field(|k: &K| &k.$field),
                size_of_field(|a: &A| &a.$field),
                "size of {name}.{}",
                stringify!($field),
            );
            $seen.push(format!("{name}.{}", stringify!($field)));
        )+
    }};
}

fn size_of_field<S, F>(_: impl Fn(&S) -> &F) -> usize {
    size_of::<F>()
}

/// `module::NAME` of each `const` and `Struct.field` a module file declares (a line-based reading
/// of the module's own layout: one item per line, blocks closed on a line of their own).
fn declared(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    // (name, is a struct) of each open block.
    let mut open: Vec<(String, bool)> = Vec::new();
    for line in source.lines() {
        let line = line.trim();
        if line.starts_with("//") || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let keyword = |k: &str| words.iter().position(|w| *w == k).map(|i| words[i + 1]);
        if line.ends_with('{') {
            if let Some(name) = keyword("mod") {
                open.push((name.to_string(), false));
            } else if let Some(name) = keyword("struct") {
                open.push((name.to_string(), true));
            } else {
                // `use kernel::{`: nothing of the ABI inside.
                open.push((String::new(), false));
            }
        } else if line.starts_with('}') {
            open.pop();
        } else if open.last().is_some_and(|(name, _)| name.is_empty()) {
        } else if let Some(name) = keyword("const") {
            let path: Vec<&str> = open.iter().map(|(n, _)| n.as_str()).collect();
            let name = name.trim_end_matches(':');
            found.push(if path.is_empty() {
                name.to_string()
            } else {
                format!("{}::{name}", path.join("::"))
            });
        } else if let Some((name, true)) = open.last() {
            if let Some(field) = line
                .strip_prefix("pub(crate) ")
                .and_then(|f| f.split(':').next())
            {
                found.push(format!("{name}.{field}"));
            }
        }
    }
    found
}

/// Fails on anything in `declared` that the test did not compare.
fn all_compared(file: &str, declared: Vec<String>, seen: &[String]) {
    let missed: Vec<_> = declared.into_iter().filter(|d| !seen.contains(d)).collect();
    assert!(
        missed.is_empty(),
        "{file} declares what this test does not compare: {missed:?}"
    );
}

#[test]
fn device_abi_matches_the_modules_copy() {
    let mut seen = Vec::new();
    same_values!(seen, kabi, abi:
        VENDOR_ID, DEVICE_ID, REGS_BAR, VRAM_BAR, REGS_BAR_SIZE,
        VENDOR_CAP_OFFSET, VENDOR_CAP_LEN, VENDOR_CAP_LENGTH_AT, VENDOR_CAP_LAYOUT_VERSION_AT,
        VENDOR_CAP_VERSION, VENDOR_CAP_PAGE_SHIFT, VENDOR_CAP_VRAM_SIZE,
        MSIX_CAP_OFFSET, MSIX_VECTORS, MSIX_TABLE_OFFSET, MSIX_PBA_OFFSET,
        MAGIC, ABI_VERSION,
        reg::MAGIC, reg::VERSION, reg::VRAM_SIZE_LO, reg::VRAM_SIZE_HI, reg::PAGE_SHIFT,
        reg::STATUS, reg::CONTROL, reg::SCRATCH, reg::SELFTEST_OFFSET_LO,
        reg::SELFTEST_OFFSET_HI, reg::SELFTEST_LEN, reg::SELFTEST_SEED, reg::SELFTEST_CMD,
        reg::SELFTEST_RESULT, reg::SELFTEST_MISMATCH_AT, reg::END,
        status::ENABLED, control::ENABLE,
        selftest::CMD_FILL, selftest::CMD_VERIFY, selftest::RESULT_NONE, selftest::RESULT_PASS,
        selftest::RESULT_MISMATCH, selftest::RESULT_BAD_ARGS,
        check::ROOT_LO, check::ROOT_HI, check::VA_LO, check::VA_HI, check::LEN_LO,
        check::LEN_HI, check::OFFSET_LO, check::OFFSET_HI, check::PAT_LO, check::PAT_HI,
        check::FLAGS, check::DOORBELL, check::STATUS, check::PAGES, check::PRESENT,
        check::LEAVES_4K, check::LEAVES_2M, check::LEAVES_1G, check::MEMTYPE,
        check::MISMATCH_VA_LO, check::MISMATCH_VA_HI, check::MISMATCH_KIND, check::SEQ,
        check::SMALLER_PAGES, check::STATUS_PASS, check::MEMTYPE_MIXED, check::FLAG_LA57,
        check::FLAG_REQUIRE_PRESENT, check::STRATEGY_SHIFT, check::RUN,
    );
    all_compared("abi.rs", declared(MODULE_ABI), &seen);
}

#[test]
fn ioctl_abi_matches_the_modules_copy() {
    let mut seen = Vec::new();
    same_values!(seen, kuapi, abi::uapi:
        IOC_TYPE, INFO, STATS, SET_STRATEGY, SET_ENABLED, RESET_STATS, LATENCY, CHECK,
        LATENCY_BUCKETS,
    );
    same_layout!(
        seen,
        Info {
            vram_size,
            page_size,
            bar2_phys,
            strategy,
            state,
            strategies
        }
    );
    // The one field whose name differs (the module never reads it).
    assert_eq!(
        offset_of!(kuapi::Info, _reserved),
        offset_of!(abi::uapi::Info, reserved)
    );
    seen.push("Info._reserved".into());
    same_layout!(
        seen,
        Stats {
            faults_pte,
            faults_pmd,
            faults_pud,
            fallbacks,
            pte_inserts,
            bytes_inserted,
            zaps,
            sigbus,
            handler_calls,
            already_mapped,
            pmd_inserts,
            pud_inserts,
        }
    );
    same_layout!(
        seen,
        LatencyLevel {
            count,
            sum_ns,
            max_ns,
            buckets
        }
    );
    same_layout!(seen, Latency { pte, pmd, pud });
    same_layout!(
        seen,
        CheckArgs {
            va,
            len,
            offset_delta,
            strategy,
            require_present,
            status,
            memtype,
            pages,
            present,
            leaves_4k,
            leaves_2m,
            leaves_1g,
            mismatch_kind,
            mismatch_va,
            seq,
            smaller_pages,
        }
    );
    all_compared("uapi.rs", declared(MODULE_UAPI), &seen);
}

#[test]
fn strategies_match_the_modules() {
    use abi::uapi::Strategy as A;
    use kwindow::Strategy as K;
    for (k, a) in [
        (K::Page, A::Page),
        (K::Prefault16, A::Prefault16),
        (K::Range, A::Range),
        (K::RangeMm, A::RangeMm),
        (K::Ttm16, A::Ttm16),
    ] {
        assert_eq!(k as u32, a as u32, "{k:?}");
    }
    // Nothing the module has that this crate lacks, and the other way round.
    let all = A::ALL.iter().fold(0, |mask, s| mask | 1 << *s as u32);
    assert_eq!(K::supported_mask(true), all);
    for raw in 0..=u8::MAX.into() {
        assert_eq!(
            K::from_raw(raw).map(|k| k as u32),
            A::from_raw(raw).map(|a| a as u32)
        );
    }
}

#[test]
fn the_reading_of_the_module_finds_its_items() {
    let abi = declared(MODULE_ABI);
    assert!(abi.contains(&"VENDOR_ID".to_string()), "{abi:?}");
    assert!(abi.contains(&"check::SMALLER_PAGES".to_string()), "{abi:?}");
    let uapi = declared(MODULE_UAPI);
    assert!(uapi.contains(&"CHECK".to_string()), "{uapi:?}");
    assert!(
        uapi.contains(&"CheckArgs.smaller_pages".to_string()),
        "{uapi:?}"
    );
    assert!(uapi.contains(&"Info._reserved".to_string()), "{uapi:?}");
}

const MODULE_TRACE_HEADER: &str = include_str!("../../guest-driver/module/rangefault_trace.h");
const MODULE_TRACE_RS: &str = include_str!("../../guest-driver/module/trace.rs");

/// The `{ code, "name" }` pairs of a `#define NAME ... \` table in the trace header.
fn symbolic_table(name: &str) -> Vec<(u32, String)> {
    let start = MODULE_TRACE_HEADER
        .find(&format!("#define {name}"))
        .unwrap_or_else(|| panic!("rangefault_trace.h has no {name}"));
    MODULE_TRACE_HEADER[start..]
        .lines()
        .skip(1)
        .take_while(|line| line.trim_start().starts_with('{'))
        .map(|line| {
            let inner = line
                .trim()
                .trim_end_matches('\\')
                .trim()
                .trim_end_matches(',');
            let inner = inner.trim_start_matches('{').trim_end_matches('}');
            let (code, text) = inner.split_once(',').expect("{ code, \"name\" }");
            (
                code.trim().parse().expect("a numeric code"),
                text.trim().trim_matches('"').to_owned(),
            )
        })
        .collect()
}

#[test]
fn trace_event_strategy_names_match_the_abi() {
    use abi::uapi::Strategy;
    let mut expected: Vec<(u32, String)> = Strategy::ALL
        .iter()
        .map(|s| (*s as u32, s.name().to_owned()))
        .collect();
    expected.sort();
    assert_eq!(symbolic_table("RANGEFAULT_STRATEGY_NAMES"), expected);
}

#[test]
fn trace_event_level_codes_match_what_trace_rs_passes() {
    let names = symbolic_table("RANGEFAULT_LEVEL_NAMES");
    assert_eq!(names.len(), 4, "{names:?}");
    for (code, name) in names {
        let arm = match name.as_str() {
            "none" => format!("None => {code},"),
            level => {
                let variant = format!("{}{}", level[..1].to_uppercase(), &level[1..]);
                format!("Some(Level::{variant}) => {code},")
            }
        };
        assert!(MODULE_TRACE_RS.contains(&arm), "trace.rs lacks `{arm}`");
    }
}
