//! Rate-limited warnings: a client sending garbage in a loop must not be
//! able to flood the log (every message is still counted).

use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(1);
const PER_WINDOW: u32 = 5;

/// Lets through at most [`PER_WINDOW`] warnings a second and says how many
/// it held back.
#[derive(Debug, Default)]
pub struct WarnLimit {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

/// What to log for one warning.
#[derive(Debug, PartialEq, Eq)]
pub struct Allowed {
    /// Warnings held back in the window that just ended.
    pub suppressed_before: u64,
}

impl WarnLimit {
    /// Whether a warning at `now` may be logged.
    pub fn allow(&mut self, now: Instant) -> Option<Allowed> {
        let mut suppressed_before = 0;
        let window_over = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= WINDOW);
        if window_over {
            suppressed_before = std::mem::take(&mut self.suppressed);
            self.window_start = Some(now);
            self.logged = 0;
        }
        if self.logged < PER_WINDOW {
            self.logged += 1;
            Some(Allowed { suppressed_before })
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// Warnings held back and not yet reported.
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }

    /// Logs `message` (built only when it will be logged) under the limit.
    pub fn warn(&mut self, message: impl FnOnce() -> String) {
        if let Some(allowed) = self.allow(Instant::now()) {
            if allowed.suppressed_before > 0 {
                tracing::warn!(
                    "vfio-user: {} more rejected messages were not logged",
                    allowed.suppressed_before
                );
            }
            tracing::warn!("vfio-user: {}", message());
        }
    }

    /// Reports what is still held back (at the end of a connection).
    pub fn flush(&mut self) {
        let suppressed = self.take_suppressed();
        if suppressed > 0 {
            tracing::warn!("vfio-user: {suppressed} more rejected messages were not logged");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_cut_and_the_rest_counted() {
        let mut limit = WarnLimit::default();
        let start = Instant::now();
        let allowed: Vec<_> = (0..20).map(|_| limit.allow(start).is_some()).collect();
        assert_eq!(allowed.iter().filter(|&&a| a).count(), PER_WINDOW as usize);
        // The next window reports the 15 held back with its first warning.
        assert_eq!(
            limit.allow(start + WINDOW),
            Some(Allowed {
                suppressed_before: 15
            })
        );
        assert_eq!(limit.take_suppressed(), 0);
        for _ in 0..PER_WINDOW {
            limit.allow(start + WINDOW);
        }
        assert_eq!(limit.take_suppressed(), 1);
    }
}
