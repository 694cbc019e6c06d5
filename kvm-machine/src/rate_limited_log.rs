//! Rate-limited warnings about guest misbehaviour: a guest hammering an
//! unknown port must not flood the log (or slow the VMM down), but the
//! first occurrences and the number suppressed are worth seeing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `burst` messages per `window`; the rest are counted and the
/// count is reported with the next message that gets through.
#[derive(Debug)]
pub struct RateLimitedLog {
    burst: u32,
    window: Duration,
    state: Mutex<WindowState>,
}

#[derive(Debug)]
struct WindowState {
    started: Option<Instant>,
    sent: u32,
    suppressed: u64,
}

impl RateLimitedLog {
    pub const fn new(burst: u32, window: Duration) -> Self {
        Self {
            burst,
            window,
            state: Mutex::new(WindowState {
                started: None,
                sent: 0,
                suppressed: 0,
            }),
        }
    }

    /// Logs `message()` as a warning unless over the limit. The message is
    /// only formatted when it is logged.
    pub fn warn(&self, message: impl FnOnce() -> String) {
        if let Some(suppressed) = self.admit(Instant::now()) {
            let message = message();
            if suppressed > 0 {
                tracing::warn!("kvm: {message} ({suppressed} similar messages suppressed)");
            } else {
                tracing::warn!("kvm: {message}");
            }
        }
    }

    /// `Some(suppressed so far)` if a message may go out at `now`.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let expired = state
            .started
            .is_none_or(|started| now.duration_since(started) >= self.window);
        if expired {
            state.started = Some(now);
            state.sent = 0;
        }
        if state.sent < self.burst {
            state.sent += 1;
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_suppresses_then_reports_the_count() {
        let log = RateLimitedLog::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(log.admit(t0), Some(0));
        assert_eq!(log.admit(t0), Some(0));
        assert_eq!(log.admit(t0), None);
        assert_eq!(log.admit(t0), None);
        assert_eq!(log.admit(t0 + Duration::from_secs(11)), Some(2));
    }
}
