//! Process-wide counters for `/metrics` (Prometheus text format 0.0.4). Ingest, fetch, publish
//! and the server count here; what the store already keeps (source states, poll counters) is read
//! from it when scraped. Counters live for the process, like every Prometheus counter.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

#[derive(Default)]
pub struct Metrics {
    stored: AtomicU64,
    unchanged: AtomicU64,
    rejected: AtomicU64,
    source_new: AtomicU64,
    source_updated: AtomicU64,
    feeds: Mutex<HashMap<String, Arc<FeedCounters>>>,
    other: Mutex<BTreeMap<(&'static str, u16), u64>>,
    publishing: Mutex<Publishing>,
}

#[derive(Default)]
struct Publishing {
    /// Per feed: last duration, items, when it was last published (checked unchanged or written).
    feeds: BTreeMap<String, (Duration, usize, SystemTime)>,
    /// The end of the last publish pass in which no feed failed.
    last_ok: Option<DateTime<Utc>>,
    passes: u64,
    failed_passes: u64,
    /// Feeds whose publish the guard refuses, and why.
    refused: BTreeMap<String, String>,
}

/// Requests for one feed, kept across publishes (the server's snapshot holds an `Arc` of it).
#[derive(Default)]
pub struct FeedCounters {
    pub ok: AtomicU64,
    pub not_modified: AtomicU64,
    pub unauthorized: AtomicU64,
    pub bytes: AtomicU64,
    /// Per key label (first hex digits of its hash): requests and the last one (Unix seconds).
    keys: Mutex<BTreeMap<String, (u64, i64)>>,
}

impl FeedCounters {
    pub fn key_used(&self, label: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = keys.entry(label.to_string()).or_default();
        slot.0 += 1;
        slot.1 = Utc::now().timestamp();
    }
}

pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    pub fn ingested(&self, stored: usize, unchanged: usize, rejected: usize) {
        self.stored.fetch_add(stored as u64, Relaxed);
        self.unchanged.fetch_add(unchanged as u64, Relaxed);
        self.rejected.fetch_add(rejected as u64, Relaxed);
    }

    pub fn source_items(&self, new: usize, updated: usize) {
        self.source_new.fetch_add(new as u64, Relaxed);
        self.source_updated.fetch_add(updated as u64, Relaxed);
    }

    pub fn feed(&self, name: &str) -> Arc<FeedCounters> {
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        feeds.entry(name.to_string()).or_default().clone()
    }

    /// A request not for a feed: `route` is index, opml, healthz, readyz, metrics, archive or other.
    pub fn request(&self, route: &'static str, status: u16) {
        *self.other.lock().unwrap_or_else(PoisonError::into_inner).entry((route, status)).or_default() += 1;
    }

    pub fn published(&self, feed: &str, took: Duration, items: usize) {
        let mut p = self.publishing.lock().unwrap_or_else(PoisonError::into_inner);
        p.feeds.insert(feed.to_string(), (took, items, SystemTime::now()));
    }

    pub fn pass_done(&self, ok: bool) {
        let mut p = self.publishing.lock().unwrap_or_else(PoisonError::into_inner);
        p.passes += 1;
        if ok {
            p.last_ok = Some(Utc::now());
        } else {
            p.failed_passes += 1;
        }
    }

    /// Records (or, with `None`, clears) a feed's refused publish.
    pub fn refused(&self, feed: &str, why: Option<String>) {
        let mut p = self.publishing.lock().unwrap_or_else(PoisonError::into_inner);
        match why {
            Some(w) => p.refused.insert(feed.to_string(), w),
            None => p.refused.remove(feed),
        };
    }

    /// The feeds whose publish is refused, with why.
    pub fn refusals(&self) -> Vec<(String, String)> {
        let p = self.publishing.lock().unwrap_or_else(PoisonError::into_inner);
        p.refused.iter().map(|(f, w)| (f.clone(), w.clone())).collect()
    }

    pub fn last_ok_publish(&self) -> Option<DateTime<Utc>> {
        self.publishing.lock().unwrap_or_else(PoisonError::into_inner).last_ok
    }

    /// The text format. `sources`: (name, status, polls, not modified, errors) from the store;
    /// `hidden`: feeds left out (keyed feeds, on a public listener).
    pub fn render(&self, articles: usize, sources: &[(String, String, u64, u64, u64)], hidden: &[String]) -> String {
        let mut out = String::with_capacity(4096);
        head(&mut out, "siar_articles", "gauge", "Articles in the store.");
        let _ = writeln!(out, "siar_articles {articles}");
        head(&mut out, "siar_ingest_files_total", "counter", "Drop-folder files by outcome since start.");
        for (outcome, v) in [("stored", &self.stored), ("unchanged", &self.unchanged), ("rejected", &self.rejected)] {
            let _ = writeln!(out, "siar_ingest_files_total{{outcome=\"{outcome}\"}} {}", v.load(Relaxed));
        }
        head(&mut out, "siar_source_items_total", "counter", "Items from external sources stored since start.");
        for (kind, v) in [("new", &self.source_new), ("updated", &self.source_updated)] {
            let _ = writeln!(out, "siar_source_items_total{{kind=\"{kind}\"}} {}", v.load(Relaxed));
        }
        head(&mut out, "siar_sources", "gauge", "Configured sources by status of their last poll.");
        let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
        for s in sources {
            *by_status.entry(s.1.as_str()).or_default() += 1;
        }
        for (status, n) in by_status {
            let _ = writeln!(out, "siar_sources{{status=\"{}\"}} {n}", label(status));
        }
        head(&mut out, "siar_source_polls_total", "counter", "Polls of each source by outcome (kept in the store).");
        for (name, _, polls, not_modified, errors) in sources {
            let fetched = polls.saturating_sub(*not_modified).saturating_sub(*errors);
            for (outcome, n) in [("200", fetched), ("304", *not_modified), ("error", *errors)] {
                let _ =
                    writeln!(out, "siar_source_polls_total{{source=\"{}\",outcome=\"{outcome}\"}} {n}", label(name));
            }
        }

        let p = self.publishing.lock().unwrap_or_else(PoisonError::into_inner);
        head(&mut out, "siar_publish_passes_total", "counter", "Publish passes by result.");
        let _ = writeln!(out, "siar_publish_passes_total{{result=\"ok\"}} {}", p.passes - p.failed_passes);
        let _ = writeln!(out, "siar_publish_passes_total{{result=\"failed\"}} {}", p.failed_passes);
        head(
            &mut out,
            "siar_publish_refused",
            "gauge",
            "1 while the publish guard refuses the feed (items lost without a recorded cause).",
        );
        for feed in p.refused.keys() {
            if !hidden.contains(feed) {
                let _ = writeln!(out, "siar_publish_refused{{feed=\"{}\"}} 1", label(feed));
            }
        }
        head(&mut out, "siar_publish_duration_seconds", "gauge", "How long the feed's last publish took.");
        for (feed, (took, _, _)) in p.feeds.iter().filter(|(f, _)| !hidden.contains(*f)) {
            let _ =
                writeln!(out, "siar_publish_duration_seconds{{feed=\"{}\"}} {:.6}", label(feed), took.as_secs_f64());
        }
        head(&mut out, "siar_publish_age_seconds", "gauge", "Seconds since the feed was last published or checked.");
        for (feed, (_, _, at)) in p.feeds.iter().filter(|(f, _)| !hidden.contains(*f)) {
            let age = at.elapsed().unwrap_or_default().as_secs_f64();
            let _ = writeln!(out, "siar_publish_age_seconds{{feed=\"{}\"}} {age:.3}", label(feed));
        }
        head(&mut out, "siar_feed_items", "gauge", "Items in the feed's current documents.");
        for (feed, (_, items, _)) in p.feeds.iter().filter(|(f, _)| !hidden.contains(*f)) {
            let _ = writeln!(out, "siar_feed_items{{feed=\"{}\"}} {items}", label(feed));
        }
        drop(p);

        let feeds: Vec<(String, Arc<FeedCounters>)> = {
            let f = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
            let mut v: Vec<_> =
                f.iter().filter(|(k, _)| !hidden.contains(*k)).map(|(k, c)| (k.clone(), c.clone())).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        head(&mut out, "siar_http_requests_total", "counter", "Requests by feed (or route) and status.");
        for (feed, c) in &feeds {
            for (status, v) in [("200", &c.ok), ("304", &c.not_modified), ("401", &c.unauthorized)] {
                let _ = writeln!(
                    out,
                    "siar_http_requests_total{{feed=\"{}\",status=\"{status}\"}} {}",
                    label(feed),
                    v.load(Relaxed)
                );
            }
        }
        for ((route, status), n) in self.other.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(out, "siar_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        head(&mut out, "siar_http_not_modified_ratio", "gauge", "Share of a feed's answered requests that were 304.");
        for (feed, c) in &feeds {
            let (ok, nm) = (c.ok.load(Relaxed), c.not_modified.load(Relaxed));
            let ratio = if ok + nm == 0 { 0.0 } else { nm as f64 / (ok + nm) as f64 };
            let _ = writeln!(out, "siar_http_not_modified_ratio{{feed=\"{}\"}} {ratio:.4}", label(feed));
        }
        head(&mut out, "siar_http_response_bytes_total", "counter", "Body bytes sent per feed (after compression).");
        for (feed, c) in &feeds {
            let _ =
                writeln!(out, "siar_http_response_bytes_total{{feed=\"{}\"}} {}", label(feed), c.bytes.load(Relaxed));
        }
        head(
            &mut out,
            "siar_partner_requests_total",
            "counter",
            "Requests to keyed feeds per key (first hex of its hash).",
        );
        let mut last = String::new();
        for (feed, c) in &feeds {
            for (key, (n, at)) in c.keys.lock().unwrap_or_else(PoisonError::into_inner).iter() {
                let _ = writeln!(out, "siar_partner_requests_total{{feed=\"{}\",key=\"{key}\"}} {n}", label(feed));
                let _ = writeln!(
                    last,
                    "siar_partner_last_request_timestamp_seconds{{feed=\"{}\",key=\"{key}\"}} {at}",
                    label(feed)
                );
            }
        }
        head(&mut out, "siar_partner_last_request_timestamp_seconds", "gauge", "When each key last fetched its feed.");
        out.push_str(&last);
        out
    }
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_feeds_leave_no_trace() {
        let m = Metrics::default();
        m.published("all", Duration::from_millis(3), 5);
        m.published("mitra", Duration::from_millis(3), 5);
        m.feed("mitra").key_used("ba7816bf");
        m.feed("all").ok.fetch_add(1, Relaxed);
        let public = m.render(10, &[], &["mitra".to_string()]);
        assert!(public.contains("siar_feed_items{feed=\"all\"} 5") && !public.contains("mitra"), "{public}");
        let private = m.render(10, &[], &[]);
        assert!(private.contains("siar_partner_requests_total{feed=\"mitra\",key=\"ba7816bf\"} 1"), "{private}");
    }
}
