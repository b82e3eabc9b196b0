//! Cron schedules: a 5-field expression read in an IANA time zone (`croner` with
//! `chrono-tz`). Times are Unix milliseconds, like everywhere in the store.
//!
//! Across a DST change a firing is neither skipped nor doubled: a wall-clock time the
//! spring-forward gap swallows fires at the first instant after it, and one the fall-back
//! hour repeats fires once (croner's rules, checked in the tests below).

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;

use crate::store::Millis;

#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    pub fn parse(expression: &str, timezone: &str) -> Result<Schedule, String> {
        if expression.split_whitespace().count() != 5 {
            return Err(format!(
                "schedule {expression:?} is not a 5-field cron expression (minute hour day month weekday)"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| format!("schedule {expression:?}: {e}"))?;
        let tz: Tz = timezone
            .parse()
            .map_err(|_| format!("{timezone:?} is not an IANA time zone (e.g. Europe/Paris)"))?;
        Ok(Schedule { cron, tz })
    }

    fn at(&self, ms: Millis) -> Option<DateTime<Tz>> {
        Utc.timestamp_millis_opt(ms)
            .single()
            .map(|t| t.with_timezone(&self.tz))
    }

    /// The first firing strictly after `ms`.
    pub fn next_after(&self, ms: Millis) -> Option<Millis> {
        let from = self.at(ms)?;
        self.cron
            .find_next_occurrence(&from, false)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    /// The latest firing at or before `ms`: after downtime, the one missed firing that
    /// still runs.
    pub fn latest_at_or_before(&self, ms: Millis) -> Option<Millis> {
        let from = self.at(ms)?;
        self.cron
            .find_previous_occurrence(&from, true)
            .ok()
            .map(|t| t.timestamp_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> Millis {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("test time")
            .timestamp_millis()
    }

    /// Every firing in [from, to).
    fn firings(s: &Schedule, from: Millis, to: Millis) -> Vec<Millis> {
        let mut out = Vec::new();
        let mut t = from - 1;
        while let Some(next) = s.next_after(t) {
            if next >= to {
                break;
            }
            out.push(next);
            t = next;
        }
        out
    }

    #[test]
    fn refuses_what_is_not_five_fields_or_a_zone() {
        assert!(Schedule::parse("* * * *", "UTC").is_err());
        assert!(Schedule::parse("0 * * * * *", "UTC").is_err());
        assert!(Schedule::parse("61 * * * *", "UTC").is_err());
        assert!(Schedule::parse("*/5 * * * *", "Mars/Olympus").is_err());
        assert!(Schedule::parse("*/5 * * * *", "Europe/Paris").is_ok());
    }

    #[test]
    fn spring_forward_fires_once_for_a_time_the_gap_swallows() {
        // Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
        let s = Schedule::parse("30 2 * * *", "Europe/Paris").expect("schedule");
        let day = firings(&s, ms("2026-03-28T12:00:00Z"), ms("2026-03-30T12:00:00Z"));
        assert_eq!(
            day.len(),
            2,
            "one firing on each of the two nights: {day:?}"
        );
        assert_eq!(
            day[0],
            ms("2026-03-29T01:00:00Z"),
            "the first instant after the gap"
        );
        assert_eq!(day[1], ms("2026-03-30T00:30:00Z"));
    }

    #[test]
    fn fall_back_fires_once_for_a_time_the_clock_repeats() {
        // Paris, 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let s = Schedule::parse("30 2 * * *", "Europe/Paris").expect("schedule");
        let day = firings(&s, ms("2026-10-24T12:00:00Z"), ms("2026-10-26T12:00:00Z"));
        assert_eq!(
            day.len(),
            2,
            "one firing on each of the two nights: {day:?}"
        );
        assert_eq!(day[0], ms("2026-10-25T00:30:00Z"), "the first 02:30 (CEST)");
        assert_eq!(day[1], ms("2026-10-26T01:30:00Z"));
        // An hourly schedule keeps every real hour: 25 on the long day, none doubled.
        let hourly = Schedule::parse("0 * * * *", "Europe/Paris").expect("schedule");
        let long_day = firings(
            &hourly,
            ms("2026-10-24T22:00:00Z"),
            ms("2026-10-25T23:00:00Z"),
        );
        assert_eq!(long_day.len(), 25);
        let short_day = firings(
            &hourly,
            ms("2026-03-28T23:00:00Z"),
            ms("2026-03-29T22:00:00Z"),
        );
        assert_eq!(short_day.len(), 23);
    }

    #[test]
    fn latest_missed_firing_is_the_last_one_not_after_now() {
        let s = Schedule::parse("*/5 * * * *", "UTC").expect("schedule");
        let now = ms("2026-12-04T10:17:30Z");
        assert_eq!(s.latest_at_or_before(now), Some(ms("2026-12-04T10:15:00Z")));
        assert_eq!(
            s.latest_at_or_before(ms("2026-12-04T10:15:00Z")),
            Some(ms("2026-12-04T10:15:00Z"))
        );
        assert_eq!(s.next_after(now), Some(ms("2026-12-04T10:20:00Z")));
    }
}
