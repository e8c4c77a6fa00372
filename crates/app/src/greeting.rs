//! The original TinyFish greeting, `Hello World on this date Tuesday, November 24, 2026.`,
//! computed once per UTC day and cached per worker thread as [`Bytes`].

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use time::macros::format_description;
use time::OffsetDateTime;

const SECS_PER_DAY: u64 = 86_400;

/// The greeting for a UTC day, counted in days since 1970-01-01.
pub fn greeting_for_day(day: u64) -> String {
    let secs = i64::try_from(day.saturating_mul(SECS_PER_DAY)).unwrap_or(i64::MAX);
    let date = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fmt =
        format_description!("[weekday repr:long], [month repr:long] [day padding:zero], [year]");
    // Formatting a valid date with a fixed description cannot fail.
    let text = date.format(fmt).unwrap_or_default();
    format!("Hello World on this date {text}.")
}

/// The UTC day number of a point in time.
pub fn day_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / SECS_PER_DAY)
}

/// A greeting body that is rebuilt only when the UTC day changes.
#[derive(Debug, Default)]
pub struct GreetingCache {
    day: u64,
    body: Bytes,
}

impl GreetingCache {
    /// The greeting for the day `now` falls on; one clock comparison when cached.
    pub fn body_at(&mut self, now: SystemTime) -> Bytes {
        let day = day_of(now);
        if day != self.day || self.body.is_empty() {
            self.day = day;
            self.body = Bytes::from(greeting_for_day(day));
        }
        self.body.clone()
    }
}

thread_local! {
    static CACHE: RefCell<GreetingCache> = RefCell::new(GreetingCache::default());
}

/// Today's greeting (UTC), from this thread's cache.
pub fn today() -> Bytes {
    let now = SystemTime::now();
    CACHE.with(|c| c.borrow_mut().body_at(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn matches_the_original_wording() {
        // 2026-11-24 is a Tuesday.
        let day = day_of(at(1_795_478_400 + 3_600));
        assert_eq!(
            greeting_for_day(day),
            "Hello World on this date Tuesday, November 24, 2026."
        );
        // Days below 10 have two digits.
        assert_eq!(
            greeting_for_day(day_of(at(1_772_668_800))),
            "Hello World on this date Thursday, March 05, 2026."
        );
        assert_eq!(
            greeting_for_day(0),
            "Hello World on this date Thursday, January 01, 1970."
        );
    }

    #[test]
    fn cache_changes_at_utc_midnight_only() {
        let mut c = GreetingCache::default();
        let midnight = 1_795_478_400; // 2026-11-24T00:00:00Z
        let before = c.body_at(at(midnight - 1));
        assert!(before.ends_with(b"November 23, 2026."), "{before:?}");
        let first = c.body_at(at(midnight));
        let later = c.body_at(at(midnight + SECS_PER_DAY - 1));
        assert_eq!(first, later);
        assert_eq!(
            first.as_ptr(),
            later.as_ptr(),
            "same day must reuse the cached bytes"
        );
        assert!(c
            .body_at(at(midnight + SECS_PER_DAY))
            .ends_with(b"November 25, 2026."));
    }

    #[test]
    fn today_is_cached() {
        let a = today();
        let b = today();
        assert!(a.starts_with(b"Hello World on this date "));
        // Unless the test straddles midnight, the same allocation is handed out.
        if a == b {
            assert_eq!(a.as_ptr(), b.as_ptr());
        }
    }
}
