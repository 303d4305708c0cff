//! Dates as feeds write them: RFC 3339 and RFC 822/2822 first, then a tolerant reading of the
//! shapes real feeds use that those parsers refuse: zone names such as `WIB`/`WITA`/`WIT` and US
//! zones, Indonesian and English day and month names (`Jumat, 27 Nov 2026 10.00 WIB`,
//! `27 Agustus 2026 pukul 14:30`), ISO dates with a space, two-digit years. A date without a zone
//! is read in the site's time zone.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

pub fn parse(s: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let t = s.trim();
    if t.is_empty() || t.len() > 100 {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(t) {
        return Some(d.with_timezone(&Utc));
    }
    tolerant(t, tz)
}

const MONTHS: &[(&str, u32)] = &[
    ("january", 1),
    ("januari", 1),
    ("jan", 1),
    ("february", 2),
    ("februari", 2),
    ("pebruari", 2),
    ("feb", 2),
    ("peb", 2),
    ("march", 3),
    ("maret", 3),
    ("mar", 3),
    ("april", 4),
    ("apr", 4),
    ("may", 5),
    ("mei", 5),
    ("june", 6),
    ("juni", 6),
    ("jun", 6),
    ("july", 7),
    ("juli", 7),
    ("jul", 7),
    ("august", 8),
    ("agustus", 8),
    ("aug", 8),
    ("agu", 8),
    ("agt", 8),
    ("ags", 8),
    ("agus", 8),
    ("september", 9),
    ("sept", 9),
    ("sep", 9),
    ("october", 10),
    ("oktober", 10),
    ("oct", 10),
    ("okt", 10),
    ("november", 11),
    ("nopember", 11),
    ("nov", 11),
    ("nop", 11),
    ("december", 12),
    ("desember", 12),
    ("dec", 12),
    ("des", 12),
];

const DAYS: &[&str] = &[
    "mon",
    "monday",
    "tue",
    "tues",
    "tuesday",
    "wed",
    "wednesday",
    "thu",
    "thur",
    "thurs",
    "thursday",
    "fri",
    "friday",
    "sat",
    "saturday",
    "sun",
    "sunday",
    "senin",
    "sen",
    "selasa",
    "sel",
    "rabu",
    "rab",
    "kamis",
    "kam",
    "jumat",
    "jum",
    "sabtu",
    "sab",
    "minggu",
    "min",
    "ahad",
];

/// Words between the parts that carry no date ("at", Indonesian "pukul"/"jam").
const FILLER: &[&str] = &["at", "on", "pukul", "pkl", "jam", "tanggal", "tgl"];

/// Zone names in feeds, with their offsets in minutes.
const ZONES: &[(&str, i32)] = &[
    ("z", 0),
    ("ut", 0),
    ("utc", 0),
    ("gmt", 0),
    ("wib", 7 * 60),
    ("wita", 8 * 60),
    ("wit", 9 * 60),
    ("est", -5 * 60),
    ("edt", -4 * 60),
    ("cst", -6 * 60),
    ("cdt", -5 * 60),
    ("mst", -7 * 60),
    ("mdt", -6 * 60),
    ("pst", -8 * 60),
    ("pdt", -7 * 60),
    ("bst", 60),
    ("cet", 60),
    ("cest", 2 * 60),
    ("jst", 9 * 60),
    ("sgt", 8 * 60),
    ("myt", 8 * 60),
];

#[derive(Default)]
struct Parts {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    time: Option<NaiveTime>,
    offset: Option<i32>,
}

fn tolerant(s: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let mut p = Parts::default();
    let cleaned: String = s.chars().map(|c| if matches!(c, ',' | '\'' | '’') { ' ' } else { c }).collect();
    let mut numbers: Vec<u32> = Vec::new();
    // `2026-11-27T10:00` is a date and a time.
    let tokens = cleaned.split_whitespace().flat_map(|t| match t.split_once(['T', 't']) {
        Some((d, c)) if iso_date(d).is_some() => vec![d, c],
        _ => vec![t],
    });
    for raw in tokens {
        let tok = raw.trim_end_matches('.');
        let lower = tok.to_lowercase();
        if DAYS.contains(&lower.as_str()) || FILLER.contains(&lower.as_str()) {
            continue;
        }
        if let Some(&(_, m)) = MONTHS.iter().find(|(n, _)| *n == lower) {
            p.month.get_or_insert(m);
            continue;
        }
        if let Some(off) = zone(&lower) {
            p.offset = Some(off);
            continue;
        }
        if let Some(t) = time(tok) {
            p.time = Some(t.0);
            if let Some(off) = t.1 {
                p.offset = Some(off);
            }
            continue;
        }
        if let Some((y, m, d)) = iso_date(tok) {
            (p.year, p.month, p.day) = (Some(y), Some(m), Some(d));
            continue;
        }
        if tok.bytes().all(|b| b.is_ascii_digit()) && !tok.is_empty() && tok.len() <= 4 {
            numbers.push(tok.parse().ok()?);
            continue;
        }
        return None;
    }
    for n in numbers {
        if n > 31 || (p.day.is_some() && p.year.is_none()) {
            if p.year.is_some() {
                return None;
            }
            p.year = Some(match n {
                0..=49 => 2000 + n as i32,
                50..=99 => 1900 + n as i32,
                _ => n as i32,
            });
        } else if p.day.is_none() && n >= 1 {
            p.day = Some(n);
        } else {
            return None;
        }
    }
    let date = NaiveDate::from_ymd_opt(p.year?, p.month?, p.day?)?;
    let naive = date.and_time(p.time.unwrap_or_default());
    match p.offset {
        Some(off) => {
            FixedOffset::east_opt(off * 60)?.from_local_datetime(&naive).single().map(|d| d.with_timezone(&Utc))
        }
        None => tz.from_local_datetime(&naive).latest().map(|d| d.with_timezone(&Utc)),
    }
}

/// `+0700`, `+07:00`, `-05`, `GMT+7`, `UTC+07:00`, or a name.
fn zone(lower: &str) -> Option<i32> {
    if let Some(&(_, off)) = ZONES.iter().find(|(n, _)| *n == lower) {
        return Some(off);
    }
    let rest = lower.strip_prefix("gmt").or_else(|| lower.strip_prefix("utc")).unwrap_or(lower);
    numeric_offset(rest)
}

fn numeric_offset(s: &str) -> Option<i32> {
    let (sign, digits) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().ok()?, 0),
        3 => (digits[..1].parse::<i32>().ok()?, digits[1..].parse::<i32>().ok()?),
        _ => (digits[..2].parse::<i32>().ok()?, digits[2..].parse::<i32>().ok()?),
    };
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

/// `10:00`, `10:00:00`, `10.00` (Indonesian), with an optional attached offset or `Z`.
fn time(tok: &str) -> Option<(NaiveTime, Option<i32>)> {
    let (clock, offset) = match tok.find(['+', '-', 'Z', 'z']) {
        Some(i) if i > 0 => {
            let z = &tok[i..];
            let off = if z.eq_ignore_ascii_case("z") { 0 } else { numeric_offset(z)? };
            (&tok[..i], Some(off))
        }
        _ => (tok, None),
    };
    let sep = if clock.contains(':') { ':' } else { '.' };
    let parts: Vec<&str> = clock.split(sep).collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    if parts[0].len() > 2 || parts[1].len() != 2 {
        return None;
    }
    let h = parts[0].parse().ok()?;
    let m = parts[1].parse().ok()?;
    let s = parts.get(2).map_or(Some(0), |s| s.get(..2).and_then(|s| s.parse().ok()))?;
    Some((NaiveTime::from_hms_opt(h, m, s)?, offset))
}

/// `2026-11-27` or `2026/11/27`.
fn iso_date(tok: &str) -> Option<(i32, u32, u32)> {
    let parts: Vec<&str> = tok.split(['-', '/']).collect();
    if parts.len() != 3 || parts[0].len() != 4 {
        return None;
    }
    Some((parts[0].parse().ok()?, parts[1].parse().ok()?, parts[2].parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<String> {
        parse(s, chrono_tz::Asia::Jakarta).map(|d| d.to_rfc3339())
    }

    #[test]
    fn standard_forms() {
        assert_eq!(p("2026-11-27T03:00:00Z"), Some("2026-11-27T03:00:00+00:00".into()));
        assert_eq!(p("Fri, 27 Nov 2026 10:00:00 +0700"), Some("2026-11-27T03:00:00+00:00".into()));
        assert_eq!(p("Fri, 27 Nov 2026 10:00:00 GMT"), Some("2026-11-27T10:00:00+00:00".into()));
    }

    #[test]
    fn indonesian_zones_days_and_months() {
        assert_eq!(p("Fri, 27 Nov 2026 10:00:00 WIB"), Some("2026-11-27T03:00:00+00:00".into()));
        assert_eq!(p("Jumat, 27 Nov 2026 10:00:00 WITA"), Some("2026-11-27T02:00:00+00:00".into()));
        assert_eq!(p("Jum'at, 27 November 2026 10.00 WIT"), Some("2026-11-27T01:00:00+00:00".into()));
        assert_eq!(p("Senin, 17 Agustus 2026 pukul 14:30 WIB"), Some("2026-08-17T07:30:00+00:00".into()));
        assert_eq!(p("Sabtu, 05 Des 2026 08:15:00 +0700"), Some("2026-12-05T01:15:00+00:00".into()));
        assert_eq!(p("27 Mei 2026"), Some("2026-05-26T17:00:00+00:00".into()), "no zone: the site's");
        assert_eq!(p("2026-11-27 10:00:00"), Some("2026-11-27T03:00:00+00:00".into()));
        assert_eq!(p("Tue, 10 Jun 03 09:41:01 GMT"), Some("2003-06-10T09:41:01+00:00".into()));
        assert_eq!(p("Thu, 01 Oct 2026 12:00:00 EST"), Some("2026-10-01T17:00:00+00:00".into()));
        assert_eq!(p("2026-11-27T10:00:00+07:00 "), Some("2026-11-27T03:00:00+00:00".into()));
    }

    #[test]
    fn nonsense_is_none() {
        for s in ["", "yesterday", "32 Foo 2024 99:99:99 XYZ", "2024-13-45", "31 Feb 2026", "12 34 56 78"] {
            assert_eq!(p(s), None, "{s}");
        }
    }
}
