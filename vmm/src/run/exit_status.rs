//! `vmm run`'s exit status, one mapping for every engine: 0 only for a run
//! that passed, else the guest's own failing status, else why there is none.

use std::process::ExitCode;

/// Bad usage (like clap's own).
pub const EXIT_USAGE: u8 = 2;
/// The guest never reported a result.
pub const EXIT_NO_RESULT: u8 = 70;
/// The guest ran past --timeout.
pub const EXIT_TIMEOUT: u8 = 124;

/// How a run ended, as far as its exit status goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunEnd {
    pub timed_out: bool,
    /// The overall verdict (the report's `pass`).
    pub pass: bool,
    /// The guest's result status; `None` when it never reported one.
    pub guest_status: Option<i32>,
}

impl RunEnd {
    /// The exit code as a number, for tests and logs.
    pub fn status(self) -> u8 {
        if self.timed_out {
            EXIT_TIMEOUT
        } else if self.pass {
            0
        } else {
            match self.guest_status {
                None => EXIT_NO_RESULT,
                // A guest that passed in a run that did not (kernel
                // problems, host errors) still fails.
                Some(0) => 1,
                Some(code) => u8::try_from(code).unwrap_or(1),
            }
        }
    }

    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(timed_out: bool, pass: bool, guest_status: Option<i32>) -> u8 {
        RunEnd {
            timed_out,
            pass,
            guest_status,
        }
        .status()
    }

    #[test]
    fn a_pass_is_zero_and_a_timeout_wins() {
        assert_eq!(end(false, true, Some(0)), 0);
        assert_eq!(end(true, false, Some(0)), EXIT_TIMEOUT);
        assert_eq!(end(true, false, None), EXIT_TIMEOUT);
    }

    #[test]
    fn a_failing_guest_status_is_passed_on() {
        assert_eq!(end(false, false, Some(3)), 3);
        // Statuses that do not fit an exit code are a plain failure.
        assert_eq!(end(false, false, Some(300)), 1);
        assert_eq!(end(false, false, Some(-1)), 1);
    }

    #[test]
    fn a_passing_guest_in_a_failed_run_fails_and_no_result_is_70() {
        assert_eq!(end(false, false, Some(0)), 1);
        assert_eq!(end(false, false, None), EXIT_NO_RESULT);
    }
}
