//! Key encodings for the sled trees. Numbers are big-endian so byte order is time order.

use chrono::{DateTime, FixedOffset};

/// `by_date`: published time (ms, sign-flipped so negatives sort first) ++ article key.
pub fn by_date(published: &DateTime<FixedOffset>, key: &str) -> Vec<u8> {
    let ms = published.timestamp_millis();
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&((ms as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// The article key inside a `by_date` key.
pub fn key_of_by_date(k: &[u8]) -> Option<&str> {
    std::str::from_utf8(k.get(8..)?).ok()
}

/// `by_source`: source ++ 0 ++ the `by_date` key, so one source's articles are in time order.
pub fn by_source(source: &str, published: &DateTime<FixedOffset>, key: &str) -> Vec<u8> {
    let mut k = by_source_prefix(source);
    k.extend_from_slice(&by_date(published, key));
    k
}

fn archive_key(feed: &str, kind: &str, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(feed.len() + kind.len() + rest.len() + 2);
    k.extend_from_slice(feed.as_bytes());
    k.push(0);
    k.extend_from_slice(kind.as_bytes());
    if !rest.is_empty() {
        k.push(0);
        k.extend_from_slice(rest);
    }
    k
}

pub fn archive_state(feed: &str) -> Vec<u8> {
    archive_key(feed, "state", &[])
}

pub fn archive_page(feed: &str, n: u32) -> Vec<u8> {
    archive_key(feed, "page", &n.to_be_bytes())
}

pub fn archived(feed: &str, key: &str) -> Vec<u8> {
    archive_key(feed, "key", key.as_bytes())
}

/// (feed, kind, rest) of an `archives` key.
pub fn split_archive(k: &[u8]) -> Option<(&str, &str, &[u8])> {
    let z = k.iter().position(|&b| b == 0)?;
    let feed = std::str::from_utf8(&k[..z]).ok()?;
    let after = &k[z + 1..];
    let (kind, rest) = match after.iter().position(|&b| b == 0) {
        Some(i) => (&after[..i], &after[i + 1..]),
        None => (after, &b""[..]),
    };
    Some((feed, std::str::from_utf8(kind).ok()?, rest))
}

pub fn by_source_prefix(source: &str) -> Vec<u8> {
    let mut k = source.as_bytes().to_vec();
    k.push(0);
    k
}

/// The article key inside a `by_source` key.
pub fn key_of_by_source(k: &[u8]) -> Option<&str> {
    let zero = k.iter().position(|&b| b == 0)?;
    key_of_by_date(&k[zero + 1..])
}

/// `history`: article key ++ 0 ++ version.
pub fn history(key: &str, version: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 5);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

pub fn history_prefix(key: &str) -> Vec<u8> {
    let mut k = key.as_bytes().to_vec();
    k.push(0);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_keys_sort_by_time() {
        let d = |s: &str| DateTime::parse_from_rfc3339(s).expect("date");
        let a = by_date(&d("1960-01-01T00:00:00Z"), "z");
        let b = by_date(&d("2026-11-27T00:00:00+07:00"), "a");
        let c = by_date(&d("2026-11-27T00:00:00Z"), "a");
        assert!(a < b && b < c);
        assert_eq!(key_of_by_date(&c), Some("a"));
    }
}
