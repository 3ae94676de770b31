//! The service clock: the time every event, key, object, session and delivery is stamped with.
//!
//! It is the wall clock unless the process is started with an accelerated clock (`keytrail
//! serve --clock-rate 288 --clock-start 2026-11-01T00:00:00Z`): then time starts at the given
//! instant and runs `rate` times faster, so a test can watch a day of five-minute log deliveries
//! in five real minutes. Request signatures are still checked against the wall clock, because
//! clients sign with theirs; everything the services decide by time (event times, delivery and
//! digest schedules, session expiry, key deletion windows) follows this clock.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// The largest acceleration accepted: a year in about five minutes.
pub const MAX_RATE: f64 = 100_000.0;

struct Accelerated {
    origin: Instant,
    start: OffsetDateTime,
    rate: f64,
}

impl Accelerated {
    fn new(start: Option<OffsetDateTime>, rate: f64) -> Result<Self, ClockError> {
        if !(rate > 0.0 && rate <= MAX_RATE) {
            return Err(ClockError::Rate(rate));
        }
        Ok(Self {
            origin: Instant::now(),
            start: start.unwrap_or_else(OffsetDateTime::now_utc),
            rate,
        })
    }

    fn now(&self) -> OffsetDateTime {
        self.start + self.origin.elapsed().mul_f64(self.rate)
    }
}

static ACCELERATED: OnceLock<Accelerated> = OnceLock::new();

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ClockError {
    #[error("the clock rate must be a number greater than 0 and at most {MAX_RATE}, not {0}")]
    Rate(f64),
    #[error("the service clock was already set for this process")]
    AlreadySet,
}

/// Makes the service clock start at `start` (default: now) and run `rate` times as fast as the
/// wall clock, for the rest of the process. Only once, before serving.
pub fn accelerate(start: Option<OffsetDateTime>, rate: f64) -> Result<(), ClockError> {
    ACCELERATED
        .set(Accelerated::new(start, rate)?)
        .map_err(|_| ClockError::AlreadySet)
}

/// The service clock's current time.
pub fn now() -> OffsetDateTime {
    match ACCELERATED.get() {
        None => OffsetDateTime::now_utc(),
        Some(clock) => clock.now(),
    }
}

/// [`now`] as milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    i64::try_from(now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// How many times faster than the wall clock the service clock runs (1 unless accelerated).
pub fn rate() -> f64 {
    ACCELERATED.get().map_or(1.0, |clock| clock.rate)
}

/// The real time it takes for `span` to pass on the service clock.
pub fn real(span: Duration) -> Duration {
    span.div_f64(rate())
}

/// The real time until the service clock next reaches a whole multiple of `period` since the
/// Unix epoch (`period` itself when it is exactly on one), so periodic work keeps to a fixed
/// schedule — every five minutes on the fives — however long each run takes.
pub fn real_until_next_multiple(period: Duration) -> Duration {
    let period_ns = period.as_nanos().max(1);
    let now_ns = u128::try_from(now().unix_timestamp_nanos()).unwrap_or(0);
    let left_ns = period_ns - now_ns % period_ns;
    real(Duration::from_nanos(
        u64::try_from(left_ns).unwrap_or(u64::MAX),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_out_of_range_are_refused() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_RATE * 2.0] {
            assert!(matches!(
                Accelerated::new(None, rate),
                Err(ClockError::Rate(_))
            ));
        }
    }

    #[test]
    fn an_accelerated_clock_starts_where_asked_and_runs_faster() {
        let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let clock = Accelerated::new(Some(start), 1000.0).unwrap();
        let first = clock.now();
        assert!(first >= start && first < start + time::Duration::minutes(10));
        std::thread::sleep(Duration::from_millis(20));
        // 20 ms of real time is at least 20 s of service time.
        assert!(clock.now() - first >= time::Duration::seconds(20));
    }

    #[test]
    fn the_wall_clock_is_the_default() {
        assert_eq!(rate(), 1.0);
        assert!((now() - OffsetDateTime::now_utc()).abs() < time::Duration::seconds(1));
        assert_eq!(real(Duration::from_secs(300)), Duration::from_secs(300));
        assert!(real_until_next_multiple(Duration::from_secs(300)) <= Duration::from_secs(300));
    }
}
