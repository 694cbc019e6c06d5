//! A tiny log rate limiter: a misbehaving guest can hammer BAR0 with bad
//! accesses, and one warning per access would flood the host's log.

use std::time::{Duration, Instant};

/// Allows at most `burst` events per `window`; counts the rest so the next
/// allowed message can say how many were dropped.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    burst: u32,
    window: Duration,
    window_start: Option<Instant>,
    allowed_in_window: u32,
    suppressed: u64,
}

impl RateLimiter {
    pub(crate) const fn new(burst: u32, window: Duration) -> Self {
        Self {
            burst,
            window,
            window_start: None,
            allowed_in_window: 0,
            suppressed: 0,
        }
    }

    /// `Some(n)` if an event may be logged now, `n` being how many were
    /// suppressed since the last one allowed; `None` to stay quiet.
    pub(crate) fn check(&mut self) -> Option<u64> {
        self.check_at(Instant::now())
    }

    fn check_at(&mut self, now: Instant) -> Option<u64> {
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window);
        if expired {
            self.window_start = Some(now);
            self.allowed_in_window = 0;
        }
        if self.allowed_in_window < self.burst {
            self.allowed_in_window += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_window_and_reports_suppressed() {
        let mut rl = RateLimiter::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(rl.check_at(t0), Some(0));
        assert_eq!(rl.check_at(t0), Some(0));
        for _ in 0..5 {
            assert_eq!(rl.check_at(t0 + Duration::from_millis(500)), None);
        }
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(rl.check_at(t1), Some(5));
        assert_eq!(rl.check_at(t1), Some(0));
        assert_eq!(rl.check_at(t1), None);
    }
}
