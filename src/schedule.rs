//! When things run: crontab lines as ops write them, translated for the `cron` crate, and the pure
//! `until_next(now)` that every loop sleeps on. Knows nothing of feeds or articles.
//!
//! The `cron` crate is Quartz-flavoured: it wants a seconds field, numbers weekdays 1-7 from Sunday
//! and ANDs day-of-month with day-of-week. siar accepts crontab lines instead: 5 fields (or 6 with a
//! leading seconds field), weekdays 0-7 with 0 and 7 = Sunday, and Vixie cron's rule that when both
//! day fields are restricted a day matching either one fires.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    tz: Tz,
    parts: Vec<cron::Schedule>,
}

const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Schedule {
    /// Parses a crontab line (5 or 6 fields, or `@hourly`, `@daily`, ...) evaluated in `tz`.
    pub fn parse(text: &str, tz: Tz) -> Result<Schedule, String> {
        let t = text.trim();
        let parts = if t.starts_with('@') {
            let macro_line = match t {
                "@yearly" | "@annually" => "0 0 0 1 1 *",
                "@monthly" => "0 0 0 1 * *",
                "@weekly" => "0 0 0 * * 1",
                "@daily" | "@midnight" => "0 0 0 * * *",
                "@hourly" => "0 0 * * * *",
                _ => return Err("unknown macro; expected @hourly, @daily, @weekly, @monthly or @yearly".into()),
            };
            vec![cron_schedule(macro_line)?]
        } else {
            let fields: Vec<&str> = t.split_whitespace().collect();
            let (sec, rest) = match fields.len() {
                5 => ("0", &fields[..]),
                6 => (fields[0], &fields[1..]),
                n => {
                    return Err(format!(
                        "has {n} fields; expected 5 (minute hour day-of-month month day-of-week, e.g. \"*/5 * * * *\") \
                         or 6 with a leading seconds field"
                    ));
                }
            };
            let (min, hour, dom, month, dow) = (rest[0], rest[1], rest[2], rest[3], rest[4]);
            let dow = translate_weekdays(dow)?;
            let restricted = |f: &str| f != "*" && f != "?";
            if restricted(dom) && restricted(&dow) {
                // Vixie cron: either day field may match.
                vec![
                    cron_schedule(&format!("{sec} {min} {hour} {dom} {month} *"))?,
                    cron_schedule(&format!("{sec} {min} {hour} * {month} {dow}"))?,
                ]
            } else {
                vec![cron_schedule(&format!("{sec} {min} {hour} {dom} {month} {dow}"))?]
            }
        };
        Ok(Schedule { text: t.to_string(), tz, parts })
    }

    /// The first fire time strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.tz);
        self.parts.iter().filter_map(|s| s.after(&local).next()).min().map(|t| t.with_timezone(&Utc))
    }

    /// The next `n` fire times after `now`.
    pub fn upcoming(&self, now: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = now;
        while out.len() < n {
            let Some(next) = self.next_after(t) else { break };
            out.push(next);
            t = next;
        }
        out
    }

    /// How long to sleep from `now` until the next fire time; None if the schedule never fires again.
    pub fn until_next(&self, now: DateTime<Utc>) -> Option<Duration> {
        let next = self.next_after(now)?;
        Some((next - now).to_std().unwrap_or(Duration::ZERO))
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }
}

fn cron_schedule(line: &str) -> Result<cron::Schedule, String> {
    cron::Schedule::from_str(line).map_err(|e| format!("not a valid cron line ({e})"))
}

/// Maps a crontab day-of-week field (0-7, 0 and 7 = Sunday, names) to the cron crate's 1-7 from Sunday.
fn translate_weekdays(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_string());
    }
    let day = |s: &str| -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = DAY_NAMES.iter().position(|d| lower.starts_with(d) && lower.len() >= 3) {
            return Ok(i as u32);
        }
        match s.parse::<u32>() {
            Ok(n) if n <= 7 => Ok(n % 7),
            _ => Err(format!("day-of-week {s:?}: expected 0-7 (0 and 7 = Sunday) or a name such as Mon")),
        }
    };
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|&s| s > 0).ok_or(format!("day-of-week step {s:?}"))?),
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (day(a)?, day(b)?);
            // "5-7" or "fri-sun": 7 is Sunday at the end of the week.
            let b = if b == 0 && a > 0 { 7 } else { b };
            if a > b {
                return Err(format!("day-of-week range {range:?} runs backwards"));
            }
            (a, b)
        } else {
            let d = day(range)?;
            (d, if step > 1 { 6 } else { d })
        };
        let mut d = lo;
        while d <= hi {
            days[(d % 7) as usize] = true;
            d += step;
        }
    }
    let list: Vec<String> = (0..7).filter(|&d| days[d]).map(|d| (d + 1).to_string()).collect();
    if list.is_empty() {
        return Err(format!("day-of-week {field:?} selects no day"));
    }
    Ok(list.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Weekday};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("test date").with_timezone(&Utc)
    }

    #[test]
    fn five_fields_every_five_minutes() {
        let s = Schedule::parse("*/5 * * * *", Tz::UTC).expect("valid");
        assert_eq!(s.next_after(at("2026-11-27T10:02:30Z")), Some(at("2026-11-27T10:05:00Z")));
        assert_eq!(s.until_next(at("2026-11-27T10:04:59Z")), Some(Duration::from_secs(1)));
    }

    #[test]
    fn six_fields_with_seconds() {
        let s = Schedule::parse("*/10 * * * * *", Tz::UTC).expect("valid");
        assert_eq!(s.next_after(at("2026-11-27T10:00:01Z")), Some(at("2026-11-27T10:00:10Z")));
    }

    #[test]
    fn crontab_weekday_numbers() {
        // 1-5 is Monday to Friday in crontab (the cron crate alone would read Sunday to Thursday).
        let s = Schedule::parse("0 9 * * 1-5", Tz::UTC).expect("valid");
        let days: Vec<Weekday> = s.upcoming(at("2026-11-27T12:00:00Z"), 5).iter().map(|t| t.weekday()).collect();
        assert_eq!(days, [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]);
        for sunday in ["0 9 * * 0", "0 9 * * 7", "0 9 * * sun"] {
            let t = Schedule::parse(sunday, Tz::UTC).expect("valid").next_after(at("2026-11-27T12:00:00Z"));
            assert_eq!(t.map(|t| t.weekday()), Some(Weekday::Sun), "{sunday}");
        }
        let weekend = Schedule::parse("0 9 * * 6-7", Tz::UTC).expect("valid");
        let days: Vec<Weekday> = weekend.upcoming(at("2026-11-27T12:00:00Z"), 2).iter().map(|t| t.weekday()).collect();
        assert_eq!(days, [Weekday::Sat, Weekday::Sun]);
    }

    #[test]
    fn either_day_field_matches_like_vixie_cron() {
        // The 1st of the month or any Monday.
        let s = Schedule::parse("0 0 1 * 1", Tz::UTC).expect("valid");
        let next = s.upcoming(at("2026-11-27T00:00:00Z"), 2);
        assert_eq!(next, [at("2026-11-30T00:00:00Z"), at("2026-12-01T00:00:00Z")]);
    }

    #[test]
    fn evaluated_in_the_site_time_zone() {
        let s = Schedule::parse("0 6 * * *", chrono_tz::Asia::Jakarta).expect("valid");
        assert_eq!(
            s.next_after(at("2026-11-27T00:00:00Z")),
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 23, 0, 0).unwrap())
        );
    }

    #[test]
    fn bad_lines_say_what_is_expected() {
        assert!(Schedule::parse("* * *", Tz::UTC).unwrap_err().contains("expected 5"));
        assert!(Schedule::parse("0 9 * * 8", Tz::UTC).unwrap_err().contains("day-of-week"));
        assert!(Schedule::parse("61 * * * *", Tz::UTC).is_err());
        assert!(Schedule::parse("@often", Tz::UTC).is_err());
        assert!(Schedule::parse("@hourly", Tz::UTC).is_ok());
    }
}
