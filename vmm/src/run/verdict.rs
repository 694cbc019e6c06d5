//! Whether a run passed: the guest's own result and what the host saw.

use crate::engine::GuestRun;

/// The host's side of the verdict.
pub struct Verdict {
    /// What went wrong on the host side (the report's `host_errors`).
    pub host_errors: Vec<String>,
    /// The overall verdict (the report's `pass`).
    pub pass: bool,
}

impl Verdict {
    /// `trace_errors`: what went wrong with the fault trace (`--trace`).
    pub fn of(outcome: &GuestRun, trace_errors: Vec<String>) -> Verdict {
        let host_errors = host_errors(outcome, trace_errors);
        let console = &outcome.console;
        let pass = console.exit_code == Some(0)
            && console.problems.is_empty()
            && console.errors.is_empty()
            && host_errors.is_empty()
            && outcome.host.boundary().vram_trapped_accesses.get() == 0
            && !outcome.timed_out;
        Verdict { host_errors, pass }
    }
}

fn host_errors(outcome: &GuestRun, trace_errors: Vec<String>) -> Vec<String> {
    let mut host_errors: Vec<String> = outcome.engine_error.iter().cloned().collect();
    host_errors.extend(trace_errors);
    if outcome.console.dropped > 0 {
        host_errors.push(format!(
            "{} guest result/error/problem lines beyond the first 1000 of each were not kept",
            outcome.console.dropped
        ));
    }
    if outcome.console.exit_code.is_none() && !outcome.timed_out {
        let last_words = &outcome.engine_log[outcome.engine_log.len().saturating_sub(3)..];
        host_errors.push(format!(
            "the guest ended without reporting a result ({}{})",
            outcome
                .engine_status
                .as_deref()
                .unwrap_or("the engine's status is unknown"),
            if last_words.is_empty() {
                String::new()
            } else {
                format!("; its last words: {}", last_words.join(" | "))
            }
        ));
    }
    host_errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::test_support::run;

    #[test]
    fn a_clean_run_whose_guest_passed_passes() {
        let verdict = Verdict::of(&run(Some(0)), Vec::new());
        assert!(verdict.pass);
        assert!(verdict.host_errors.is_empty());
        assert!(!Verdict::of(&run(Some(1)), Vec::new()).pass);
    }

    #[test]
    fn host_side_trouble_fails_a_passing_guest() {
        let trapped = run(Some(0));
        trapped.host.boundary().vram_trapped_accesses.inc();
        assert!(!Verdict::of(&trapped, Vec::new()).pass);
        let mut problem = run(Some(0));
        problem
            .console
            .problems
            .push("WARNING: at mm/memory.c".into());
        assert!(!Verdict::of(&problem, Vec::new()).pass);
        let mut engine = run(Some(0));
        engine.engine_error = Some("vCPU thread failed".into());
        let verdict = Verdict::of(&engine, Vec::new());
        assert!(!verdict.pass);
        assert_eq!(verdict.host_errors, ["vCPU thread failed"]);
        let trace = Verdict::of(&run(Some(0)), vec!["fault trace: truncated".into()]);
        assert!(!trace.pass);
        assert_eq!(trace.host_errors, ["fault trace: truncated"]);
        let mut dropped = run(Some(0));
        dropped.console.dropped = 2;
        let verdict = Verdict::of(&dropped, Vec::new());
        assert!(!verdict.pass);
        assert!(verdict.host_errors[0].starts_with("2 guest result"));
    }

    #[test]
    fn a_guest_that_never_reported_is_a_host_error_with_its_last_words() {
        let verdict = Verdict::of(&run(None), Vec::new());
        assert!(!verdict.pass);
        assert_eq!(
            verdict.host_errors,
            ["the guest ended without reporting a result (guest reset; its last words: b | c | d)"]
        );
        // A timeout says so itself.
        let mut timed_out = run(None);
        timed_out.timed_out = true;
        let verdict = Verdict::of(&timed_out, Vec::new());
        assert!(!verdict.pass && verdict.host_errors.is_empty());
    }
}
