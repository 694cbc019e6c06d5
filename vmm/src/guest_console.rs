//! Reads the guest's serial console: echoes it, collects the results the
//! guest tools print (`RANGEFAULT-*` lines) and flags kernel trouble.

use std::time::{Duration, Instant};

use rangefault_report::GuestResult;
use serde_json::Value;

/// Kernel log fragments that mean the guest kernel misbehaved. A boot test
/// fails on any of them, whatever the scenario reported. Matched with
/// `contains`, case-sensitively, so each must be specific enough never to
/// appear on a healthy boot (e.g. not "KASAN:" nor "kmemleak:", which both
/// print an "initialized" line; their reports are caught by "BUG: KASAN:"
/// and "suspected memory leaks").
const PROBLEM_MARKERS: &[&str] = &[
    // Oopses, BUG()s, panics, WARN()s. "BUG:" also covers mm's "BUG: Bad
    // page map", "BUG: Bad page state", "BUG: Bad rss-counter state",
    // "BUG: non-zero pgtables_bytes", "BUG: unable to handle page fault",
    // "BUG: KASAN:", "BUG: KFENCE:", "BUG: soft lockup", "BUG: sleeping
    // function called from invalid context" and lockdep's "BUG: held lock
    // freed!"; the explicit mm entries below keep those caught should a
    // kernel print them without the prefix.
    "Oops",
    "BUG:",
    "WARNING:",
    "Kernel panic",
    "general protection fault",
    "Unable to handle",
    "Call Trace:",
    "kernel BUG",
    // Lockdep and RCU.
    "possible circular locking",
    "possible recursive locking",
    "inconsistent lock state",
    "suspicious RCU usage",
    "detected stalls on CPUs",
    "self-detected stall on CPU",
    // Hung tasks and hard lockups.
    "blocked for more than",
    "hard LOCKUP",
    // Page-table corruption: pXd_ERROR(), e.g. from pXd_clear_bad() in
    // mm/pgtable-generic.c: "mm/pgtable-generic.c:53: bad pud
    // 00000000f3a5c0e4(8000000fe00000e7)" (newer kernels drop the pointer:
    // "bad pmd (...)"); also dump_page()'s "page dumped because: bad pte".
    ": bad pgd",
    ": bad p4d",
    ": bad pud",
    ": bad pmd",
    ": bad pte",
    // mm/memory.c print_bad_pte()/print_bad_page_map(), mm/page_alloc.c
    // bad_page(), kernel/fork.c check_mm().
    "Bad page map",
    "Bad page state",
    "Bad rss-counter",
    "non-zero pgtables_bytes",
    // x86 fault.c pgtable_bad(): a reserved bit set in a page-table entry.
    "Corrupted page table at address",
    "Bad pagetable",
    // mm/swapfile.c on a corrupt swap entry (in a PTE, say).
    "Bad swap file entry",
    "Bad swap offset entry",
    "Unused swap file entry",
    "Unused swap offset entry",
    // Data-structure corruption checks and sanitizers.
    "list_add corruption",
    "list_del corruption",
    "refcount_t: ",
    "UBSAN:",
    "suspected memory leak",
    "unreferenced object 0x",
];

/// Longest console line kept whole; longer output is cut into lines of this size.
pub const MAX_LINE: usize = 64 << 10;
/// Most results, errors and problem lines kept each (a guest printing "WARNING:" in a loop must
/// not grow host memory); what is dropped beyond is counted.
const MAX_ENTRIES: usize = 1000;

/// What the guest said, as far as the host cares.
#[derive(Debug, Default)]
pub struct GuestConsole {
    pub results: Vec<GuestResult>,
    pub errors: Vec<String>,
    pub exit_code: Option<i32>,
    /// The driver's first "bound:" line and when it arrived (a guest
    /// program may unbind and rebind the driver later; those binds are only
    /// counted, in `binds` and `bind_times`).
    pub bound_line: Option<String>,
    pub bound_after: Option<Duration>,
    /// Every "bound:" line seen, the first included.
    pub binds: u64,
    /// When each bind arrived, in order (the first `MAX_ENTRIES`).
    pub bind_times: Vec<Duration>,
    pub problems: Vec<String>,
    /// Results, errors and problem lines beyond `MAX_ENTRIES`, not kept.
    pub dropped: u64,
    started: Option<Instant>,
    /// A data line a kernel message cut in two, waiting for its rest.
    cut: Option<Cut>,
}

/// A result or exit line that a kernel message cut: the rest comes on the first later line
/// that is not a whole kernel line.
#[derive(Debug)]
struct Cut {
    line: CutLine,
    /// What came before the kernel message (after the line's prefix).
    head: String,
    /// How many more lines may still complete it.
    left: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CutLine {
    Result,
    /// Cut right after its prefix: the code follows.
    Exit,
}

/// Lines a cut line may take to complete before it counts as broken.
const MAX_SPLIT_LINES: u8 = 8;

/// Where a printk record starts inside `text` ("[  194.742068] ..."), if it does.
fn embedded_kernel_message(text: &str) -> Option<usize> {
    text.match_indices('[').map(|(at, _)| at).find(|&at| {
        text[at + 1..]
            .split_once(']')
            .is_some_and(|(stamp, _)| is_printk_stamp(stamp))
    })
}

/// Whether `stamp` is what printk puts between the brackets ("  194.742068").
fn is_printk_stamp(stamp: &str) -> bool {
    let stamp = stamp.trim();
    stamp.contains('.') && stamp.chars().all(|c| c.is_ascii_digit() || c == '.')
}

impl GuestConsole {
    pub fn new(started: Instant) -> Self {
        Self {
            started: Some(started),
            ..Self::default()
        }
    }

    /// Takes one console line (without its line ending).
    pub fn feed(&mut self, raw: &str) {
        self.feed_at(raw, Instant::now());
    }

    /// [`Self::feed`] for a line that arrived at `now`.
    fn feed_at(&mut self, raw: &str, now: Instant) {
        let line = raw.trim_end_matches(['\r', '\n']);
        let text = strip_timestamp(line);
        if let Some(cut) = self.cut.take() {
            // Whole kernel lines may come before the rest of a cut line.
            if text.len() == line.len() {
                let whole = cut.head + line;
                match cut.line {
                    CutLine::Result => self.result(&whole, now),
                    CutLine::Exit => self.exit_code = Some(whole.trim().parse().unwrap_or(255)),
                }
                return;
            }
            if cut.left == 0 {
                self.give_up(cut, "cut by kernel messages and never completed");
            } else {
                self.cut = Some(Cut {
                    left: cut.left - 1,
                    ..cut
                });
            }
        }
        // Result and exit lines are data: kernel messages printed into them are taken out
        // and read on their own; their text is never a kernel problem.
        if let Some(json) = text.strip_prefix(rangefault_report::RESULT_PREFIX) {
            self.result(json, now);
            return;
        } else if let Some(message) = text.strip_prefix("RANGEFAULT-ERROR ") {
            keep(&mut self.errors, message.to_owned(), &mut self.dropped);
        } else if let Some(code) = text.strip_prefix("RANGEFAULT-EXIT ") {
            // A kernel message may follow on the same line.
            let (code, message) =
                code.split_at(embedded_kernel_message(code).unwrap_or(code.len()));
            if code.trim().is_empty() && !message.is_empty() {
                // Printed before the code itself: the code follows on a later line.
                self.feed_at(message, now);
                self.cut = Some(Cut {
                    line: CutLine::Exit,
                    head: String::new(),
                    left: MAX_SPLIT_LINES,
                });
                return;
            }
            self.exit_code = Some(code.trim().parse().unwrap_or(255));
            if !message.is_empty() {
                self.feed_at(message, now);
            }
            return;
        } else if text.contains("rangefault") && text.contains(" bound:") {
            let after = self.started.map(|s| now.saturating_duration_since(s));
            if self.bound_line.is_none() {
                self.bound_line = Some(text.to_owned());
                self.bound_after = after;
            }
            self.binds += 1;
            // Capped, but not counted in `dropped`: rebinding in a loop is
            // no problem of the guest's, and `binds` has the full count.
            if let Some(after) = after.filter(|_| self.bind_times.len() < MAX_ENTRIES) {
                self.bind_times.push(after);
            }
        }
        if PROBLEM_MARKERS.iter().any(|m| text.contains(m)) {
            keep(&mut self.problems, text.to_owned(), &mut self.dropped);
        }
    }

    /// A result's JSON. The kernel may print in the middle of a long line
    /// from user space ("...\"rea[  194.74] clocksource: ...\n" then
    /// "d it...}"): such a line is taken apart, the kernel message read as
    /// its own line, and the result completed from the lines that follow.
    fn result(&mut self, json: &str, now: Instant) {
        let error = match serde_json::from_str(json) {
            Ok(value) => return self.typed_result(json, value),
            Err(e) => e,
        };
        let left = self.cut.as_ref().map_or(MAX_SPLIT_LINES, |c| c.left);
        if let (Some(at), 1..) = (embedded_kernel_message(json), left) {
            let (head, message) = json.split_at(at);
            match serde_json::from_str(head) {
                // The message came right after the result ("...}[  46.80] clocksource: ...").
                Ok(value) => self.typed_result(head, value),
                // It came in the middle: the rest of the result follows on later lines.
                Err(e) if e.is_eof() => {
                    self.cut = Some(Cut {
                        line: CutLine::Result,
                        head: head.to_owned(),
                        left: left - 1,
                    })
                }
                Err(_) => {
                    self.broken_result(json, &error.to_string());
                    return;
                }
            }
            let pending = self.cut.take();
            self.feed_at(message, now);
            self.cut = pending;
            return;
        }
        self.broken_result(json, &error.to_string());
    }

    /// Keeps a whole result line's JSON if it is what its scenario prints: a probe result of
    /// the wrong shape (a field renamed on one side only) is an error, not a result.
    fn typed_result(&mut self, json: &str, value: Value) {
        match GuestResult::from_value(value) {
            Ok(result) => keep(&mut self.results, result, &mut self.dropped),
            Err(e) => self.broken_result(json, &format!("not the probe's result type: {e}")),
        }
    }

    fn broken_result(&mut self, json: &str, why: &str) {
        keep(
            &mut self.errors,
            format!("unparseable result line ({why}): {json}"),
            &mut self.dropped,
        );
    }

    /// A cut line whose rest never came: a broken result, or an exit without its code.
    fn give_up(&mut self, cut: Cut, why: &str) {
        match cut.line {
            CutLine::Result => self.broken_result(&cut.head, why),
            CutLine::Exit => {
                self.exit_code = Some(255);
                keep(
                    &mut self.errors,
                    format!("exit line {why}"),
                    &mut self.dropped,
                );
            }
        }
    }

    /// The console has ended: a line still waiting for its rest is broken.
    pub fn finish(&mut self) {
        if let Some(cut) = self.cut.take() {
            self.give_up(cut, "cut by a kernel message; the console ended first");
        }
    }

    /// `key=value` from the driver's bound line, e.g. `vram`.
    pub fn bound_value(&self, key: &str) -> Option<&str> {
        let line = self.bound_line.as_deref()?;
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim_end_matches(','))
    }
}

/// Pushes `item` unless `list` is full, counting what is dropped.
fn keep<T>(list: &mut Vec<T>, item: T, dropped: &mut u64) {
    if list.len() < MAX_ENTRIES {
        list.push(item);
    } else {
        *dropped += 1;
    }
}

/// Drops printk's "[    1.234567] " prefix.
fn strip_timestamp(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((stamp, tail)) = rest.split_once(']') {
            if is_printk_stamp(stamp) {
                return tail.trim_start();
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(result: &GuestResult) -> &serde_json::Map<String, Value> {
        match result {
            GuestResult::User(map) => map,
            GuestResult::Probe(probe) => panic!("a probe result: {probe:?}"),
        }
    }

    fn console(lines: &[&str]) -> GuestConsole {
        let mut c = GuestConsole::new(Instant::now());
        for l in lines {
            c.feed(l);
        }
        c
    }

    #[test]
    fn collects_results_exit_and_bound_line() {
        let c = console(&[
            "[    1.000000] rangefault 0000:00:03.0: bound: vram=1073741824 page_size=2097152 bar2=0xfe00000000 abi=1\r",
            "RANGEFAULT-RESULT {\"scenario\":\"user\",\"pass\":true}",
            "RANGEFAULT-EXIT 0",
        ]);
        assert_eq!(c.results.len(), 1);
        assert_eq!(c.exit_code, Some(0));
        assert_eq!(c.bound_value("vram"), Some("1073741824"));
        assert_eq!(c.bound_value("bar2"), Some("0xfe00000000"));
        assert!(c.problems.is_empty());
    }

    #[test]
    fn flags_kernel_problems_and_bad_json() {
        let c = console(&[
            "[    2.5] WARNING: CPU: 0 PID: 1 at mm/memory.c:123 insert_pfn",
            "[    2.6] BUG: sleeping function called from invalid context",
            "RANGEFAULT-RESULT {not json",
        ]);
        assert_eq!(c.problems.len(), 2);
        assert_eq!(c.errors.len(), 1);
        assert!(c.results.is_empty());
    }

    #[test]
    fn a_probe_result_of_the_wrong_shape_is_an_error() {
        // Valid JSON named like a probe scenario, but not its type (fields missing).
        let c = console(&["RANGEFAULT-RESULT {\"scenario\":\"soak\",\"pass\":true}"]);
        assert!(c.results.is_empty());
        assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
        assert!(
            c.errors[0].contains("not the probe's result type"),
            "{:?}",
            c.errors
        );
    }

    #[test]
    fn a_flood_of_problem_lines_is_capped_and_counted() {
        let mut c = GuestConsole::new(Instant::now());
        for _ in 0..MAX_ENTRIES + 5 {
            c.feed("WARNING: again");
        }
        assert_eq!(c.problems.len(), MAX_ENTRIES);
        assert_eq!(c.dropped, 5);
    }

    #[test]
    fn a_result_split_by_a_kernel_message_is_put_back_together() {
        let c = console(&[
            "RANGEFAULT-RESULT {\"scenario\":\"user\",\"detail\":\"O_RDONLY maps and rea[  194.742068] clocksource: Marking clocksource tsc unstable due to frequency skew\r",
            "[  194.750000] WARNING: CPU: 1 PID: 7 at mm/memory.c:1 f+0x0\r",
            "d it\",\"pass\":true}\r",
            "RANGEFAULT-EXIT 0",
        ]);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(c.results.len(), 1);
        assert_eq!(user(&c.results[0])["detail"], "O_RDONLY maps and read it");
        // Both kernel lines were read as kernel lines.
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
        assert!(c.problems[0].starts_with("WARNING: CPU: 1"));
    }

    #[test]
    fn a_kernel_message_right_after_a_result_is_its_own_line() {
        let c = console(&[
            "RANGEFAULT-RESULT {\"scenario\":\"user\",\"pass\":true}[   46.800066] clocksource: Marking clocksource tsc unstable due to frequency skew\r",
            "[   46.9] BUG: Bad page map in process probe\r",
            "RANGEFAULT-EXIT 0",
        ]);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(c.results.len(), 1);
        assert_eq!(c.results[0].name(), Some("user"));
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
        // JSON that is broken before the kernel message is still broken.
        let c = console(&["RANGEFAULT-RESULT {\"a\" 1}[    1.0] x"]);
        assert_eq!((c.results.len(), c.errors.len()), (0, 1));
        // A result's text is data, not a kernel problem.
        let c = console(&["RANGEFAULT-RESULT {\"detail\":\"no BUG: here\"}"]);
        assert_eq!((c.results.len(), c.problems.len()), (1, 0));
    }

    #[test]
    fn an_exit_line_with_a_kernel_message_after_it_keeps_its_code() {
        let c = console(&["RANGEFAULT-EXIT 0[   12.5] WARNING: at mm/memory.c:1\r"]);
        assert_eq!(c.exit_code, Some(0));
        assert_eq!(c.problems.len(), 1);
        assert_eq!(console(&["RANGEFAULT-EXIT 0x"]).exit_code, Some(255));
    }

    #[test]
    fn a_result_that_never_completes_is_an_error() {
        let mut lines = vec!["RANGEFAULT-RESULT {\"a\":\"b[    1.000000] x"];
        lines.extend(["[    1.1] more"; 3]);
        lines.push("}");
        let c = console(&lines);
        assert_eq!(c.results.len(), 0);
        assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
        // Nothing but kernel lines after the cut: broken after MAX_SPLIT_LINES of them.
        let mut lines = vec!["RANGEFAULT-RESULT {\"a\":\"b[    1.000000] x"];
        lines.extend(["[    1.1] more"; MAX_SPLIT_LINES as usize + 1]);
        let c = console(&lines);
        assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
        // The console ends before the rest arrives.
        let mut c = console(&["RANGEFAULT-RESULT {\"a\":\"b[    1.000000] x"]);
        assert!(c.errors.is_empty());
        c.finish();
        assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
        // A plain truncated line (no kernel message inside) is an error at once.
        let c = console(&["RANGEFAULT-RESULT {\"a\":", "RANGEFAULT-EXIT 0"]);
        assert_eq!(c.errors.len(), 1);
        assert_eq!(c.exit_code, Some(0));
    }

    #[test]
    fn an_exit_line_cut_right_after_its_prefix_takes_its_code_from_the_next_line() {
        // Seen in a nested semantics run: the clocksource watchdog printed into the exit line.
        let c = console(&[
            "RANGEFAULT-EXIT [   53.712768] clocksource: Clocksource tsc interval: 93204ns",
            "[   53.769591] tsc: Marking TSC unstable due to clocksource watchdog",
            "0",
        ]);
        assert_eq!(c.exit_code, Some(0));
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        // A code that never comes is a failure, said as such.
        let mut c = console(&["RANGEFAULT-EXIT [   53.7] clocksource: watchdog"]);
        c.finish();
        assert_eq!(c.exit_code, Some(255));
        assert!(c.errors[0].contains("exit line cut"), "{:?}", c.errors);
    }

    #[test]
    fn garbage_exit_code_is_a_failure() {
        assert_eq!(console(&["RANGEFAULT-EXIT x"]).exit_code, Some(255));
    }

    /// Each line must be flagged, and kept whole (timestamp aside).
    fn assert_flagged(lines: &[&str]) {
        for line in lines {
            let c = console(&[line]);
            assert_eq!(c.problems.len(), 1, "not flagged: {line}");
            assert_eq!(c.problems[0], strip_timestamp(line));
        }
    }

    #[test]
    fn flags_page_table_corruption() {
        assert_flagged(&[
            "[   12.345678] mm/pgtable-generic.c:53: bad pud 00000000f3a5c0e4(8000000fe00000e7)",
            "[   12.345678] mm/pgtable-generic.c:60: bad pmd 00000000c0ffee00(80000000fe2000e7)",
            "mm/pgtable-generic.c:46: bad p4d 000000003b2c1d00(0000000102d4e067)",
            "mm/pgtable-generic.c:39: bad pgd 000000003b2c1d00(0000000102d4e067)",
            // Newer pXd_ERROR() without the pointer, and another file.
            "[    3.100000] mm/memory.c:397: bad pte (8000000fe0000267)",
            "mm/pgtable-generic.c:60: bad pmd (80000000fe2000e7)",
            "page dumped because: bad pte",
            "rangefault-probe: Corrupted page table at address 7f0000000000",
            "Bad pagetable: 0009 [#1] PREEMPT SMP NOPTI",
        ]);
    }

    #[test]
    fn flags_bad_page_maps_states_and_rss_counters() {
        assert_flagged(&[
            "[    5.000000] BUG: Bad page map in process rangefault-prob  pte:8000000fe0000267 pmd:0226e067",
            "BUG: Bad page map in process rangefault-prob  pmd:80000000fe2000e7",
            "BUG: Bad page state in process rangefault-prob  pfn:fe0000",
            "[    6.1] BUG: Bad rss-counter state mm:00000000a1b2c3d4 type:MM_FILEPAGES val:-512 Comm:rangefault-prob Pid:80",
            "BUG: non-zero pgtables_bytes on freeing mm: 4096",
            // Without the prefix, should a kernel ever print them so.
            "Bad rss-counter state mm:00000000a1b2c3d4 type:MM_ANONPAGES val:1",
            "non-zero pgtables_bytes on freeing mm: 4096",
            "get_swap_device: Bad swap file entry 3fffffffffffff",
            "swap_info_get: Bad swap offset entry 400000000",
            "swap_free: Unused swap offset entry 00000100",
        ]);
    }

    #[test]
    fn flags_oopses_sanitizers_and_corruption_checks() {
        assert_flagged(&[
            "[    7.0] BUG: unable to handle page fault for address: ffffc90000200000",
            "[    7.0] Oops: Oops: 0002 [#1] PREEMPT SMP NOPTI",
            "kernel BUG at mm/memory.c:2245!",
            "Oops: general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP",
            "BUG: KASAN: slab-use-after-free in rangefault_release+0x20/0x40 [rangefault]",
            "UBSAN: array-index-out-of-bounds in drivers/misc/rangefault.c:120:5",
            "kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
            "unreferenced object 0xffff888003a1c000 (size 64):",
            "list_add corruption. next->prev should be prev (ffff8880), but was 0000000000000000. (next=ffff8880).",
            "list_del corruption, ffff888003a1c000->next is LIST_POISON1 (dead000000000100)",
            "refcount_t: underflow; use-after-free.",
            "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
            "rcu: INFO: rcu_preempt self-detected stall on CPU",
            "INFO: task rangefault-prob:80 blocked for more than 122 seconds.",
            "Watchdog detected hard LOCKUP on cpu 0",
            "WARNING: possible circular locking dependency detected",
        ]);
    }

    #[test]
    fn a_normal_boot_is_not_flagged() {
        let c = console(&[
            "[    0.000000] Linux version 7.2.0 (root@rangefault) (gcc (Debian 15.2.0-1) 15.2.0) #1 PREEMPT",
            "[    0.000000] Command line: console=ttyS0 panic=-1 rangefault.scenario=skeleton",
            "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
            "[    0.000000] NX (Execute Disable) protection: active",
            "[    0.000000] Memory: 470000K/523768K available (8192K kernel code, 1024K rwdata)",
            "[    0.010000] KASAN: KernelAddressSanitizer initialized (generic)",
            "[    0.020000] kmemleak: Kernel memory leak detector initialized (mem pool available: 15682)",
            "[    0.020000] kfence: initialized - using 2097152 bytes for 255 objects",
            "[    0.030000] rcu: Hierarchical RCU implementation.",
            "[    0.030000] rcu: RCU calculated value of scheduler-enlistment delay is 100 jiffies.",
            "[    0.040000] Lock dependency validator: Copyright (c) 2006 Red Hat, Inc., Ingo Molnar",
            "[    0.100000] PCI: Using configuration type 1 for base access",
            "[    0.110000] PCI: Using host bridge windows from ACPI; if necessary, use \"pci=nocrs\" and report a bug",
            "[    0.120000] pci 0000:00:03.0: [1234:5246] type 00 class 0x038000 conventional PCI endpoint",
            "[    0.120000] pci 0000:00:03.0: BAR 2 [mem 0xfe00000000-0xfe3fffffff 64bit pref]",
            "[    0.130000] pci 0000:00:02.0: BAR 0: assigned [mem 0xfebf0000-0xfebfffff]",
            "[    0.140000] pci_bus 0000:00: resource 4 [io  0x0000-0x0cf7 window]",
            "[    0.200000] clocksource: Switched to clocksource tsc",
            "[    0.300000] Freeing unused kernel image (initmem) memory: 1024K",
            "[    0.300000] Write protecting the kernel read-only data: 12288k",
            "[    0.310000] Run /init as init process",
            "[    0.400000] rangefault: loading out-of-tree module taints kernel.",
            "[    0.410000] rangefault 0000:00:03.0: bound: vram=1073741824 page_size=2097152 bar2=0xfe00000000 abi=1",
            "RANGEFAULT-RESULT {\"scenario\":\"skeleton\",\"pass\":true}",
            "[    0.500000] rangefault 0000:00:03.0: unbound",
            "RANGEFAULT-EXIT 0",
            "[    0.600000] reboot: Power down",
        ]);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.binds, 1);
    }

    #[test]
    fn the_first_bind_is_the_bound_line_and_rebinds_are_counted() {
        let start = Instant::now();
        let mut c = GuestConsole::new(start);
        c.feed_at(
            "[    1.0] rangefault 0000:00:03.0: bound: vram=67108864 page_size=4096 bar2=0xfe00000000 abi=1",
            start + Duration::from_millis(1500),
        );
        c.feed_at(
            "[    9.0] rangefault 0000:00:03.0: unbound",
            start + Duration::from_secs(9),
        );
        c.feed_at(
            "[    9.5] rangefault 0000:00:03.0: bound: vram=67108864 page_size=65536 bar2=0xfd00000000 abi=1",
            start + Duration::from_secs(10),
        );
        assert_eq!(c.bound_after, Some(Duration::from_millis(1500)));
        assert_eq!(c.bound_value("page_size"), Some("4096"));
        assert_eq!(c.bound_value("bar2"), Some("0xfe00000000"));
        assert_eq!(c.binds, 2);
        assert_eq!(
            c.bind_times,
            [Duration::from_millis(1500), Duration::from_secs(10)]
        );
        assert!(c.problems.is_empty());
    }

    #[test]
    fn rebinding_in_a_loop_is_capped_but_counted_and_no_problem() {
        let mut c = GuestConsole::new(Instant::now());
        for _ in 0..MAX_ENTRIES + 3 {
            c.feed("rangefault 0000:00:03.0: bound: vram=1 page_size=4096 bar2=0x0 abi=1");
        }
        assert_eq!(c.binds, (MAX_ENTRIES + 3) as u64);
        assert_eq!(c.bind_times.len(), MAX_ENTRIES);
        assert_eq!(c.dropped, 0);
    }
}
