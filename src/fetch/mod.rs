//! The aggregator: polls every enabled `[[source]]` on its interval (or cron schedule), politely
//! (conditional GET, cache hints, Retry-After, jitter, at most `concurrency` polls at once and 2 per
//! host) and without ever giving up (failures back off exponentially up to `max_backoff`, then keep
//! polling at that pace; a success resets it). Items go to the store; the publisher is woken.

pub mod dates;
pub mod http;
pub mod parse;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use url::Url;

use crate::config::{Config, Source};
use crate::store::{Outcome, SourceState, Store};

/// A source's next poll is never stretched by cache hints beyond this (or its own interval).
const MAX_STRETCH: Duration = Duration::from_secs(24 * 3600);

/// What one poll did, for logs and `run --once`.
#[derive(Debug, Clone)]
pub struct PollReport {
    pub source: String,
    pub ok: bool,
    pub new: usize,
    pub updated: usize,
    pub next: Option<DateTime<Utc>>,
    /// Failed without any answer from the origin (DNS, connect, timeout).
    pub network: bool,
    /// The failure was counted against the source.
    pub counted: bool,
}

/// When the next poll happens. Pure: `now`, the interval and what happened.
/// - success: the interval, stretched (never shrunk) by the origin's freshness hints, at most to
///   max(interval, 24 h);
/// - failure number n (n >= 1): interval × 2^(n-1), at most `max_backoff` (never below the interval),
///   and not before a `Retry-After`, which is honoured up to `max_backoff`;
/// - plus up to 10% (at most 5 min) of random jitter so sources drift apart.
pub fn next_delay(
    interval: Duration,
    max_backoff: Duration,
    failures: u32,
    hint: Option<Duration>,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let base = if failures == 0 {
        let cap = interval.max(MAX_STRETCH);
        interval.max(hint.unwrap_or_default().min(cap))
    } else {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        let backoff = interval.saturating_mul(factor).min(max_backoff).max(interval);
        backoff.max(retry_after.unwrap_or_default().min(max_backoff.max(interval)))
    };
    let spread = base.mul_f64(0.1).min(Duration::from_secs(300));
    base + spread.mul_f64(jitter.clamp(0.0, 1.0))
}

/// A random number in [0, 1) without a random-number crate: std's per-process hash keys.
fn random_unit() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Who answered lately: when no origin at all answers and other sources fail too, the network is
/// down, and that is not counted against a source.
#[derive(Default)]
struct NetLog {
    last_response: Option<DateTime<Utc>>,
    network_failures: HashMap<String, DateTime<Utc>>,
}

pub struct Fetcher {
    cfg: Arc<Config>,
    store: Store,
    client: http::Client,
    global: Arc<Semaphore>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    net: Mutex<NetLog>,
    started: DateTime<Utc>,
}

impl Fetcher {
    pub fn new(cfg: Arc<Config>, store: Store) -> Result<Fetcher, String> {
        Ok(Fetcher {
            client: http::Client::new(&cfg.fetch)?,
            global: Arc::new(Semaphore::new(cfg.fetch.concurrency)),
            hosts: Mutex::new(HashMap::new()),
            net: Mutex::new(NetLog::default()),
            started: Utc::now(),
            cfg,
            store,
        })
    }

    /// The stored state of a source, reset when its configured URL changed.
    fn state(&self, source: &Source) -> SourceState {
        let stored = match self.store.source_state(&source.name) {
            Ok(s) => s,
            Err(e) => {
                warn!("source {}: cannot read its stored state ({e}); starting afresh", source.name);
                None
            }
        };
        match stored {
            Some(s) if s.configured_url == source.url.as_str() => s,
            old => SourceState {
                configured_url: source.url.to_string(),
                url: source.url.to_string(),
                status: "new".into(),
                polls: old.as_ref().map_or(0, |o| o.polls),
                ..Default::default()
            },
        }
    }

    fn host_permit(&self, url: &str) -> Arc<Semaphore> {
        let host = Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
        let mut hosts = self.hosts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        hosts.entry(host).or_insert_with(|| Arc::new(Semaphore::new(2))).clone()
    }

    /// The interval of a source; for a cron source, the gap between its next two ticks.
    fn interval(source: &Source, now: DateTime<Utc>) -> Duration {
        match &source.schedule {
            Some(s) => {
                let t = s.upcoming(now, 2);
                match (t.first(), t.get(1)) {
                    (Some(a), Some(b)) => (*b - *a).to_std().unwrap_or(source.every),
                    _ => source.every,
                }
            }
            None => source.every,
        }
    }

    fn next_poll(&self, source: &Source, now: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
        let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::days(1));
        match &source.schedule {
            Some(s) => s.next_after(at - chrono::Duration::seconds(1)).unwrap_or(at),
            None => at,
        }
    }

    /// Polls one source once, whether due or not; stores its items and its new state.
    pub async fn poll(&self, source: &Source, stop: &CancellationToken) -> PollReport {
        let mut state = self.state(source);
        let mut report = PollReport {
            source: source.name.clone(),
            ok: false,
            new: 0,
            updated: 0,
            next: state.next_poll,
            network: false,
            counted: false,
        };
        if let Some(why) = &state.disabled {
            debug!("source {}: disabled ({why})", source.name);
            return report;
        }
        let host = self.host_permit(&state.url);
        // The host's permit first: a poll waiting for a busy host must not hold a global one.
        let Ok(_host) = host.acquire().await else { return report };
        let Ok(_global) = self.global.acquire().await else { return report };
        let url = match Url::parse(&state.url) {
            Ok(u) => u,
            Err(_) => source.url.clone(),
        };
        let previous = state.last_poll.unwrap_or(self.started);
        let now = Utc::now();
        state.last_poll = Some(now);
        state.polls += 1;
        let get = self.client.get(&url, state.etag.as_deref(), state.last_modified.as_deref(), source.allow_private);
        let response = tokio::select! {
            r = get => r,
            () = stop.cancelled() => return report,
        };
        let interval = Self::interval(source, now);
        let max_backoff = self.cfg.fetch.max_backoff;
        let result: Result<(Option<Duration>, http::Meta, Option<parse::Parsed>), Failure> = match response {
            Ok(http::Response::NotModified(meta)) => Ok((meta.fresh_for, meta, None)),
            Ok(http::Response::Body(body, meta)) => {
                let (src, cfg, m) = (source.clone(), self.cfg.clone(), meta.clone());
                let polled = url.clone();
                let parsed = tokio::task::spawn_blocking(move || {
                    let final_url = m.final_url.clone().unwrap_or_else(|| polled.clone());
                    let base = m.content_location.clone().unwrap_or(final_url);
                    let cx = parse::Context {
                        source: &src,
                        polled: &polled,
                        base: &base,
                        charset: m.charset.as_deref(),
                        authority: &cfg.site.id_authority,
                        site_language: &cfg.site.language,
                        tz: cfg.site.timezone,
                        now: Utc::now(),
                    };
                    parse::parse(&body, &cx)
                });
                // A stop does not wait for a parse in hand (it is bounded, but may take a while).
                let parsed = tokio::select! {
                    r = parsed => r,
                    () = stop.cancelled() => return report,
                };
                match parsed {
                    Ok(Ok(p)) => Ok((meta.fresh_for.max(p.ttl), meta, Some(p))),
                    Ok(Err(e)) => Err(Failure { text: format!("{url}: {e}"), retry_after: None, network: false }),
                    Err(e) => Err(Failure {
                        text: format!("{url}: the parser panicked: {e}"),
                        retry_after: None,
                        network: false,
                    }),
                }
            }
            Err(http::Error::Status { status: 410, url: at, .. }) => {
                state.disabled = Some(format!("410 Gone at {at} ({})", now.to_rfc3339()));
                state.status = "disabled".into();
                state.detail = format!(
                    "{at} answered 410 Gone: the feed was removed; siar stopped polling it. Remove the [[source]] or change its url to enable it again"
                );
                state.next_poll = None;
                state.errors += 1;
                warn!("source {}: {}", source.name, state.detail);
                self.save(source, &state);
                return report;
            }
            Err(e) => Err(Failure {
                network: e.is_network(),
                retry_after: match &e {
                    http::Error::Status { retry_after, .. } => *retry_after,
                    _ => None,
                },
                text: e.to_string(),
            }),
        };
        let answered = !matches!(&result, Err(f) if f.network);
        let counted = {
            let mut net = self.net.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if answered {
                net.last_response = Some(Utc::now());
                net.network_failures.remove(&source.name);
                true
            } else {
                let nobody_answered = net.last_response.is_none_or(|t| t < previous);
                let others_failed = net.network_failures.iter().any(|(n, t)| *n != source.name && *t >= previous);
                net.network_failures.insert(source.name.clone(), Utc::now());
                !(nobody_answered && others_failed)
            }
        };
        match result {
            Ok((hint, meta, parsed)) => {
                if let Some(to) = &meta.moved_to
                    && to.as_str() != state.url
                {
                    warn!(
                        "source {}: {} moved permanently to {to}; polling the new URL from now on. Update url = \"{to}\" in {}",
                        source.name,
                        state.url,
                        self.cfg.file.display()
                    );
                    state.url = to.to_string();
                }
                state.failures = 0;
                state.last_success = Some(now);
                match parsed {
                    None => {
                        state.status = "not modified".into();
                        state.detail = "304 Not Modified".into();
                        state.not_modified += 1;
                        if meta.etag.is_some() {
                            state.etag = meta.etag;
                        }
                        if meta.last_modified.is_some() {
                            state.last_modified = meta.last_modified;
                        }
                    }
                    Some(parsed) => {
                        let (new, updated) = self.store_items(source, &url, &mut state, parsed).await;
                        (report.new, report.updated) = (new, updated);
                        state.etag = meta.etag;
                        state.last_modified = meta.last_modified;
                    }
                }
                report.ok = true;
                let delay = next_delay(interval, max_backoff, 0, hint, None, random_unit());
                state.next_poll = Some(self.next_poll(source, now, delay));
            }
            Err(failure) => {
                // A failed body's validators are not kept: a later 304 must not hide the fixed document.
                state.etag = None;
                state.last_modified = None;
                state.errors += 1;
                if counted {
                    state.failures += 1;
                }
                let delay =
                    next_delay(interval, max_backoff, state.failures.max(1), None, failure.retry_after, random_unit());
                let next = self.next_poll(source, now, delay);
                state.next_poll = Some(next);
                state.status = "error".into();
                state.detail = failure.text.clone();
                (report.network, report.counted) = (failure.network, counted);
                let why = if counted {
                    format!("failure {} in a row", state.failures)
                } else {
                    "not counted: no origin answers, the network looks down".to_string()
                };
                warn!("source {}: {} ({why}); next attempt {}", source.name, failure.text, next.to_rfc3339());
            }
        }
        report.next = state.next_poll;
        self.save(source, &state);
        report
    }

    async fn store_items(
        &self,
        source: &Source,
        url: &Url,
        state: &mut SourceState,
        parsed: parse::Parsed,
    ) -> (usize, usize) {
        for note in &parsed.notes {
            info!("source {}: {url}: {note}", source.name);
        }
        state.title = Some(parsed.title.clone());
        state.feed_id = Some(parsed.feed_id.clone());
        state.site = parsed.site.clone();
        let count = parsed.items.len();
        let (store, src) = (self.store.clone(), source.clone());
        let stored =
            tokio::task::spawn_blocking(move || -> Result<(Vec<Outcome>, Vec<String>), crate::store::Error> {
                let outcomes =
                    if parsed.items.is_empty() { Vec::new() } else { store.put_many(&parsed.items, Utc::now())? };
                let older = src.max_age.and_then(|a| chrono::Duration::from_std(a).ok()).map(|a| Utc::now() - a);
                let pruned = if src.max_items.is_some() || older.is_some() {
                    store.prune(&src.name, src.max_items, older)?
                } else {
                    Vec::new()
                };
                Ok((outcomes, pruned))
            })
            .await;
        let (outcomes, pruned) = match stored {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                state.status = "error".into();
                state.detail = format!("cannot store items: {e}");
                warn!("source {}: {}", source.name, state.detail);
                return (0, 0);
            }
            Err(e) => {
                state.status = "error".into();
                state.detail = format!("storing items panicked: {e}");
                return (0, 0);
            }
        };
        let (mut new, mut updated, mut merged) = (0, 0, 0);
        for o in &outcomes {
            match o {
                Outcome::Inserted(a) => {
                    new += 1;
                    debug!("source {}: new item {} \"{}\"", source.name, a.id, a.title);
                }
                Outcome::Updated(a) => {
                    updated += 1;
                    debug!("source {}: item {} changed (version {})", source.name, a.id, a.version);
                }
                Outcome::Merged(_) => merged += 1,
                _ => {}
            }
        }
        crate::metrics::get().source_items(new, updated);
        state.status = "ok".into();
        state.detail =
            format!("{count} items: {new} new, {updated} changed, {merged} already known from another source");
        if !pruned.is_empty() {
            state.detail += &format!(", {} removed by retention", pruned.len());
        }
        if new + updated > 0 || !pruned.is_empty() {
            info!("source {}: {}", source.name, state.detail);
        }
        (new, updated)
    }

    fn save(&self, source: &Source, state: &SourceState) {
        if let Err(e) = self.store.put_source_state(&source.name, state) {
            warn!("source {}: cannot store its state: {e}", source.name);
        }
    }

    /// Polls every enabled source once, concurrently (within the limits), whether due or not.
    pub async fn poll_all(self: &Arc<Self>, stop: &CancellationToken) -> Vec<PollReport> {
        let mut set = JoinSet::new();
        for s in self.cfg.sources.iter().filter(|s| s.enabled) {
            let (me, stop, s) = (self.clone(), stop.clone(), s.clone());
            set.spawn(async move { me.poll(&s, &stop).await });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                out.push(r);
            }
        }
        // Polled together, every source failing without an answer means the network is down:
        // take back what was counted while that was not yet clear.
        if out.len() >= 2 && out.iter().all(|r| r.network) {
            for r in out.iter_mut().filter(|r| r.counted) {
                let Some(source) = self.cfg.sources.iter().find(|s| s.name == r.source) else { continue };
                let mut state = self.state(source);
                state.failures = state.failures.saturating_sub(1);
                self.save(source, &state);
                r.counted = false;
            }
            warn!("no source could be reached: the network looks down; not counted against the sources");
        }
        out
    }
}

struct Failure {
    text: String,
    retry_after: Option<Duration>,
    network: bool,
}

/// The aggregator task: each enabled source is polled when due; polls run concurrently within
/// the limits; new items wake the publisher.
pub async fn run(cfg: Arc<Config>, store: Store, changed: Arc<Notify>, stop: CancellationToken) {
    let sources: Vec<Source> = cfg.sources.iter().filter(|s| s.enabled).cloned().collect();
    if sources.is_empty() {
        return;
    }
    let fetcher = match Fetcher::new(cfg.clone(), store) {
        Ok(f) => Arc::new(f),
        Err(e) => {
            warn!("the aggregator cannot start: {e}");
            return;
        }
    };
    let now = Utc::now();
    let mut due: HashMap<String, DateTime<Utc>> = HashMap::new();
    for s in &sources {
        let state = fetcher.state(s);
        if state.disabled.is_some() {
            warn!("source {}: disabled ({}); not polled", s.name, state.detail);
            continue;
        }
        // Never polled, or overdue: soon, spread over a few seconds so a restart is not a stampede.
        let spread = chrono::Duration::milliseconds((random_unit() * 2000.0) as i64);
        due.insert(s.name.clone(), state.next_poll.map_or(now + spread, |t| t.max(now)));
    }
    info!("aggregator: {} sources to poll", due.len());
    let mut busy: HashSet<String> = HashSet::new();
    let mut polls: JoinSet<PollReport> = JoinSet::new();
    loop {
        let now = Utc::now();
        for s in &sources {
            if busy.contains(&s.name) || due.get(&s.name).is_none_or(|t| *t > now) {
                continue;
            }
            busy.insert(s.name.clone());
            let (f, s, stop) = (fetcher.clone(), s.clone(), stop.clone());
            polls.spawn(async move { f.poll(&s, &stop).await });
        }
        let next = due.iter().filter(|(n, _)| !busy.contains(*n)).map(|(_, t)| *t).min();
        let wait = next.map_or(Duration::from_secs(3600), |t| (t - Utc::now()).to_std().unwrap_or_default());
        tokio::select! {
            () = stop.cancelled() => break,
            Some(done) = polls.join_next(), if !polls.is_empty() => {
                if let Ok(r) = done {
                    busy.remove(&r.source);
                    if r.new + r.updated > 0 {
                        changed.notify_one();
                    }
                    match r.next {
                        Some(t) => { due.insert(r.source, t); }
                        None => { due.remove(&r.source); }
                    }
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
    // Polls in hand see the stop and return; what they stored stays stored.
    while polls.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn success_waits_the_interval_stretched_by_hints_never_shrunk() {
        let i = 15 * MIN;
        let cap = 24 * 60 * MIN;
        assert_eq!(next_delay(i, cap, 0, None, None, 0.0), i);
        assert_eq!(next_delay(i, cap, 0, Some(MIN), None, 0.0), i, "a short max-age never shortens");
        assert_eq!(next_delay(i, cap, 0, Some(60 * MIN), None, 0.0), 60 * MIN);
        assert_eq!(next_delay(i, cap, 0, Some(1000 * 60 * MIN), None, 0.0), cap, "stretch is capped");
        let j = next_delay(i, cap, 0, None, None, 0.999);
        assert!(j > i && j <= i + Duration::from_secs(90), "jitter adds up to 10%: {j:?}");
    }

    #[test]
    fn failures_back_off_exponentially_to_the_cap_and_keep_polling() {
        let i = 15 * MIN;
        let cap = 24 * 60 * MIN;
        let delays: Vec<Duration> = (1..=10).map(|n| next_delay(i, cap, n, None, None, 0.0)).collect();
        assert_eq!(&delays[..4], &[i, 2 * i, 4 * i, 8 * i]);
        assert_eq!(delays[9], cap, "capped");
        assert_eq!(next_delay(i, cap, 1000, None, None, 0.0), cap, "never gives up, never overflows");
        // Retry-After is honoured, per source, up to the cap.
        assert_eq!(next_delay(i, cap, 1, None, Some(120 * MIN), 0.0), 120 * MIN);
        assert_eq!(next_delay(i, cap, 1, None, Some(100_000 * MIN), 0.0), cap);
        // A success after failures is back to the interval.
        assert_eq!(next_delay(i, cap, 0, None, None, 0.0), i);
    }

    #[test]
    fn jitter_is_random_and_in_range() {
        let draws: Vec<f64> = (0..50).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        assert!(draws.iter().any(|d| (d - draws[0]).abs() > 1e-9), "not constant");
    }
}
