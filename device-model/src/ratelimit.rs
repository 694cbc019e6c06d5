//! Rate-limited warnings about guest (or client) misbehaviour: a guest
//! hammering BAR0 or an unknown port, or a vfio-user client sending garbage
//! in a loop, must not flood the host's log (or slow the VMM down), but the
//! first occurrences and the number held back are worth seeing. The one
//! limiter of the workspace: the device model, the KVM machine and the
//! vfio-user guard all use it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `burst` messages per `window`; the rest are counted and the
/// count is reported with the next message that gets through (or by
/// [`RateLimitedLog::flush`]).
#[derive(Debug)]
pub struct RateLimitedLog {
    /// Prefix of every message ("kvm", "vfio-user", ...).
    subsystem: &'static str,
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
    pub const fn new(subsystem: &'static str, burst: u32, window: Duration) -> Self {
        Self {
            subsystem,
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
        if let Some(suppressed) = self.admit() {
            let message = message();
            if suppressed > 0 {
                tracing::warn!(
                    "{}: {message} ({suppressed} similar messages suppressed)",
                    self.subsystem
                );
            } else {
                tracing::warn!("{}: {message}", self.subsystem);
            }
        }
    }

    /// `Some(messages suppressed since the last one admitted)` if a message
    /// may go out now, for callers that log with their own fields.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    /// Reports what is still held back (e.g. at the end of a connection).
    pub fn flush(&self) {
        let suppressed = std::mem::take(&mut self.state().suppressed);
        if suppressed > 0 {
            tracing::warn!(
                "{}: {suppressed} similar messages suppressed",
                self.subsystem
            );
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, WindowState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state();
        let expired = state
            .started
            .is_none_or(|started| now.saturating_duration_since(started) >= self.window);
        if expired {
            state.started = Some(now);
            state.sent = 0;
        }
        if state.sent < self.burst {
            state.sent += 1;
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed = state.suppressed.saturating_add(1);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_suppresses_then_reports_the_count() {
        let log = RateLimitedLog::new("test", 2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(log.admit_at(t0), Some(0));
        assert_eq!(log.admit_at(t0), Some(0));
        assert_eq!(log.admit_at(t0), None);
        assert_eq!(log.admit_at(t0), None);
        assert_eq!(log.admit_at(t0 + Duration::from_secs(11)), Some(2));
        assert_eq!(log.admit_at(t0 + Duration::from_secs(11)), Some(0));
    }

    #[test]
    fn flush_takes_what_is_held_back() {
        let log = RateLimitedLog::new("test", 1, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(log.admit_at(t0), Some(0));
        assert_eq!(log.admit_at(t0), None);
        log.flush();
        assert_eq!(log.state().suppressed, 0);
        assert_eq!(log.admit_at(t0 + Duration::from_secs(10)), Some(0));
    }
}
