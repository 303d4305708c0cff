//! Publish: store -> RSS 2.0, Atom 1.0 and JSON Feed files, per configured feed, on the cron
//! schedule and soon after new articles. Reads the store, writes only the output directory.
//! Output is deterministic: the same store gives the same bytes; unchanged files are not rewritten.

pub mod archive;
mod atom;
mod guard;
mod ondisk;
pub use ondisk::items_in_siar_feed;
use ondisk::{remove_public_copies, retire_removed_feeds};
mod json;
mod rss;
pub mod validate;
pub mod write;

use std::collections::HashMap;
use std::fs;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::article::Article;
use crate::config::{Access, Config, Feed, Site};
use crate::store::Store;

pub const GENERATOR: &str = concat!("siar ", env!("CARGO_PKG_VERSION"));

pub struct Urls {
    pub rss: String,
    pub atom: String,
    pub json: String,
}

/// Everything a renderer needs for one feed.
pub struct FeedDoc<'a> {
    pub feed: &'a Feed,
    pub site: &'a Site,
    pub id: String,
    pub urls: Urls,
    /// The newest `updated` among the articles (never the clock); the store's creation for an empty feed.
    pub updated: DateTime<Utc>,
    pub articles: &'a [Article],
    /// WebSub hubs, linked as rel="hub".
    pub hubs: &'a [url::Url],
    /// RFC 5005 links: `current`, `prev-archive`, `next-archive`.
    pub history: Vec<(&'static str, Urls)>,
    /// This document is an archive page (`fh:archive`).
    pub archive_page: bool,
}

/// Which document of a feed is rendered: the current one (linking the newest archive page, if
/// any) or archive page `n` (1 = oldest) with its neighbours.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct View {
    pub page: Option<u32>,
    pub prev: Option<u32>,
    pub next: Option<u32>,
}

pub const HISTORY_NS: &str = "http://purl.org/syndication/history/1.0";

impl FeedDoc<'_> {
    /// Categories then tags, without repeats.
    pub fn categories<'b>(&self, a: &'b Article) -> impl Iterator<Item = &'b str> {
        let mut seen = std::collections::HashSet::new();
        a.categories.iter().chain(&a.tags).map(String::as_str).filter(move |c| seen.insert(c.to_lowercase()))
    }
}

/// Whether a feed's selectors (categories, languages) accept an article.
pub fn selects(feed: &Feed, a: &Article) -> bool {
    let cat_ok = feed.categories.is_empty()
        || a.categories.iter().chain(&a.tags).any(|c| feed.categories.iter().any(|f| f.eq_ignore_ascii_case(c.trim())));
    let primary = |l: &str| l.split('-').next().unwrap_or_default().to_ascii_lowercase();
    let lang_ok = feed.languages.is_empty()
        || feed.languages.iter().any(|l| l.eq_ignore_ascii_case(&a.language) || *l == primary(&a.language));
    let source_ok = feed.sources.as_ref().is_none_or(|names| names.contains(&a.source));
    cat_ok && lang_ok && source_ok
}

pub const FORMATS: [&str; 3] = ["rss", "atom", "json"];

/// Renders and validates one feed's three documents: `[(extension, bytes)]`. `empty_updated` is
/// the feed's updated time when it has no articles.
pub fn render(
    cfg: &Config,
    feed: &Feed,
    articles: &[Article],
    empty_updated: DateTime<Utc>,
) -> Result<Vec<(&'static str, Vec<u8>)>, String> {
    render_view(cfg, feed, articles, empty_updated, View::default())
}

/// As `render`, for one view of the feed.
pub fn render_view(
    cfg: &Config,
    feed: &Feed,
    articles: &[Article],
    empty_updated: DateTime<Utc>,
    view: View,
) -> Result<Vec<(&'static str, Vec<u8>)>, String> {
    let urls = |f: &dyn Fn(&str) -> String| Urls { rss: f("rss"), atom: f("atom"), json: f("json") };
    let page_urls = |n: u32| urls(&|ext| feed.archive_url(&cfg.publish, n, ext));
    let mut history = Vec::new();
    if view.page.is_some() {
        history.push(("current", urls(&|ext| feed.url(&cfg.publish, ext))));
    }
    if let Some(p) = view.prev {
        history.push(("prev-archive", page_urls(p)));
    }
    if let Some(n) = view.next {
        history.push(("next-archive", page_urls(n)));
    }
    let doc = FeedDoc {
        feed,
        site: &cfg.site,
        id: feed.id.clone().unwrap_or_else(|| feed.url(&cfg.publish, "atom")),
        urls: match view.page {
            Some(n) => page_urls(n),
            None => urls(&|ext| feed.url(&cfg.publish, ext)),
        },
        updated: articles.iter().map(|a| a.updated).max().unwrap_or(empty_updated),
        articles,
        hubs: &cfg.hubs,
        history,
        archive_page: view.page.is_some(),
    };
    let n = articles.len();
    let rss = rss::render(&doc)?;
    validate::rss(&rss, n).map_err(|e| format!("RSS failed validation: {e}"))?;
    let atom = atom::render(&doc)?;
    validate::atom(&atom, n).map_err(|e| format!("Atom failed validation: {e}"))?;
    let json = json::render(&doc)?;
    validate::json(&json, n).map_err(|e| format!("JSON Feed failed validation: {e}"))?;
    Ok(vec![("rss", rss), ("atom", atom), ("json", json)])
}

type Docs = Vec<(&'static str, Vec<u8>)>;

/// Renders a feed; when the gate refuses it, finds the articles that cannot be rendered, leaves
/// them out (logged by key) and publishes the rest: one bad article never stops a feed.
fn render_without_bad_articles(
    cfg: &Config,
    feed: &Feed,
    articles: Vec<Article>,
    empty_updated: DateTime<Utc>,
    view: View,
) -> Result<(Docs, Vec<Article>), String> {
    let render = |articles: &[Article]| render_view(cfg, feed, articles, empty_updated, view);
    let first_error = match render(&articles) {
        Ok(docs) => return Ok((docs, articles)),
        Err(e) => e,
    };
    let (good, bad): (Vec<Article>, Vec<Article>) =
        articles.into_iter().partition(|a| render(std::slice::from_ref(a)).is_ok());
    if bad.is_empty() {
        return Err(first_error);
    }
    for a in &bad {
        let why = render(std::slice::from_ref(a)).err().unwrap_or_default();
        error!("feed {}: leaving out article {} ({}): {why}", feed.name, a.key, a.origin);
    }
    render(&good).map(|docs| (docs, good))
}

#[derive(Debug, Default)]
pub struct Report {
    pub written: usize,
    pub unchanged: usize,
    pub failed: usize,
    /// Every document rendered in this pass (for the server), changed or not.
    pub docs: Vec<Rendered>,
    /// Archive pages per archived feed.
    pub archive_pages: HashMap<String, u32>,
}

/// One rendered document and when its bytes last changed.
#[derive(Debug)]
pub struct Rendered {
    pub feed: String,
    pub ext: &'static str,
    pub bytes: Vec<u8>,
    /// The file's modification time (public feeds); for keyed feeds, when the bytes last changed.
    pub modified: std::time::SystemTime,
    /// Whether these bytes differ from the previous ones (or none were published).
    pub changed: bool,
}

/// Publishes feeds, remembering what it last published: a feed whose articles have not changed
/// since (and whose files are still there) is not rendered again, so cron ticks cost a store scan.
/// Keyed (partner) feeds are never written to the output directory, which a static server may
/// expose: they live in memory and only the built-in server hands them out.
#[derive(Default)]
pub struct Publisher {
    published: HashMap<String, blake3::Hash>,
    /// Keyed feeds' last bytes and when they changed.
    keyed: HashMap<(String, &'static str), (blake3::Hash, std::time::SystemTime)>,
    /// Feeds whose archive files were checked (once per process).
    archives_checked: std::collections::HashSet<String>,
    /// Files whose last write failed: an episode is logged once, and its end.
    failing: std::collections::HashSet<std::path::PathBuf>,
    /// Feeds whose publish the guard refuses: an episode is logged once, and its end.
    refused: std::collections::HashSet<String>,
}

/// A feed's articles, newest first: the selectors, the limit and, with `per_source_limit`, at
/// most that many of each source (one source re-dating its archive cannot flood a merged feed).
fn select(feed: &Feed, store: &Store) -> Result<Vec<Article>, crate::store::Error> {
    if let Some([only]) = feed.sources.as_deref() {
        let cap = feed.per_source_limit.unwrap_or(usize::MAX).min(feed.limit);
        if feed.categories.is_empty() && feed.languages.is_empty() {
            return store.newest_of(only, cap);
        }
    }
    let mut per_source: HashMap<String, usize> = HashMap::new();
    store.newest(feed.limit, |a| {
        if !selects(feed, a) {
            return false;
        }
        let Some(cap) = feed.per_source_limit else { return true };
        let n = per_source.entry(a.source.clone()).or_default();
        *n += 1;
        *n <= cap
    })
}

/// Everything a feed's bytes depend on besides the config: which articles, in which versions.
fn fingerprint(articles: &[Article], archive_pages: u32) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(&archive_pages.to_be_bytes());
    for a in articles {
        let provenance = a.provenance.len().to_string();
        for part in [a.id.as_str(), a.digest.as_str(), &a.updated.to_rfc3339(), &a.published.to_rfc3339(), &provenance]
        {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
    }
    h.finalize()
}

impl Publisher {
    /// Publishes every feed once. One failing feed is logged and the others still publish.
    pub fn publish_all(&mut self, cfg: &Config, store: &Store) -> Result<Report, crate::store::Error> {
        let started = Instant::now();
        let mut report = Report::default();
        for feed in &cfg.feeds {
            crate::notify::progress();
            let feed_started = Instant::now();
            let keyed = feed.access != Access::Public;
            let articles = select(feed, store)?;
            let json = (!keyed).then(|| cfg.paths.output.join(format!("{}.json", feed.name)));
            let mut checked = guard::check(feed, store, &articles, json.as_deref());
            let mut pages = 0;
            if checked.is_ok() && feed.archived() {
                let verify = self.archives_checked.insert(feed.name.clone());
                match archive::update(cfg, feed, store, &articles, verify)? {
                    Ok(p) => {
                        report.archive_pages.insert(feed.name.clone(), p);
                        pages = p;
                    }
                    Err(why) => checked = Err(why),
                }
            }
            if let Err(why) = checked {
                report.failed += 3;
                if self.refused.insert(feed.name.clone()) {
                    error!("feed {}: publish refused: {why}", feed.name);
                }
                crate::metrics::get().refused(&feed.name, Some(why));
                continue;
            }
            if self.refused.remove(&feed.name) {
                info!("feed {}: publishes again", feed.name);
                crate::metrics::get().refused(&feed.name, None);
            }
            let view = View { prev: (pages > 0).then_some(pages), ..View::default() };
            let print = fingerprint(&articles, pages);
            let paths = FORMATS.map(|ext| cfg.paths.output.join(format!("{}.{ext}", feed.name)));
            if keyed {
                remove_public_copies(&feed.name, &paths);
            }
            if self.published.get(&feed.name) == Some(&print) && (keyed || paths.iter().all(|p| p.exists())) {
                report.unchanged += 3;
                crate::metrics::get().published(&feed.name, feed_started.elapsed(), articles.len());
                continue;
            }
            let (docs, articles) = match render_without_bad_articles(cfg, feed, articles, store.created(), view) {
                Ok(d) => d,
                Err(e) => {
                    report.failed += 3;
                    error!("feed {}: not published, the previous files stay: {e}", feed.name);
                    continue;
                }
            };
            let mut all_ok = true;
            for ((ext, bytes), path) in docs.into_iter().zip(&paths) {
                let outcome = if keyed {
                    let hash = blake3::hash(&bytes);
                    let slot = self.keyed.entry((feed.name.clone(), ext)).or_insert((hash, SystemTime::now()));
                    let changed = slot.0 != hash;
                    if changed {
                        *slot = (hash, SystemTime::now());
                    }
                    Ok((changed, slot.1))
                } else {
                    write::write_if_changed(path, &bytes)
                        .and_then(|changed| Ok((changed, fs::metadata(path)?.modified()?)))
                };
                match outcome {
                    Ok((changed, modified)) => {
                        if self.failing.remove(path) {
                            info!("{} is written again; publishing recovered", path.display());
                        }
                        if changed {
                            report.written += 1;
                            info!(
                                "published {} ({} items, {} bytes)",
                                feed.url(&cfg.publish, ext),
                                articles.len(),
                                bytes.len()
                            );
                        } else {
                            report.unchanged += 1;
                            debug!("{} unchanged", path.display());
                        }
                        report.docs.push(Rendered { feed: feed.name.clone(), ext, bytes, modified, changed });
                    }
                    Err(e) => {
                        all_ok = false;
                        report.failed += 1;
                        // Once per episode (a full disk fails every pass): then quieter until it recovers.
                        if self.failing.insert(path.clone()) {
                            error!(
                                "cannot write {}: {e}; the previous file stays, and publishing retries on every pass (logged again when it recovers)",
                                path.display()
                            );
                        } else {
                            debug!("still cannot write {}: {e}", path.display());
                        }
                    }
                }
            }
            if all_ok {
                store.set_published(&feed.name, &guard::record(feed, &articles))?;
                self.published.insert(feed.name.clone(), print);
                crate::metrics::get().published(&feed.name, feed_started.elapsed(), articles.len());
            } else {
                self.published.remove(&feed.name);
            }
        }
        retire_removed_feeds(cfg, store)?;
        if report.failed == 0 && store.rebuilt()? {
            // Every feed now published from this store: its own records are the baseline.
            store.set_rebuilt(false)?;
        }
        debug!("publish pass took {:?}", started.elapsed());
        Ok(report)
    }
}

/// Where a publish pass's results go besides the output directory.
#[derive(Default, Clone)]
pub struct Outlets {
    /// The built-in server's snapshot.
    pub shelf: Option<Arc<crate::serve::Shelf>>,
    /// WebSub pings for changed public documents.
    pub websub: Option<crate::websub::Sender>,
}

async fn publish_blocking(publisher: &Arc<Mutex<Publisher>>, cfg: &Arc<Config>, store: &Store, outlets: &Outlets) {
    let (publisher, cfg, store, outlets) = (publisher.clone(), cfg.clone(), store.clone(), outlets.clone());
    let result = tokio::task::spawn_blocking(move || {
        let mut publisher = publisher.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        crate::failpoint::hit("publish");
        let mut report = publisher.publish_all(&cfg, &store)?;
        if report.written > 0 {
            // What the feeds now show is durable, and the store's ledger counts it (fetched items
            // are otherwise flushed by sled's timer, which records nothing).
            store.flush()?;
        }
        // Hubs hear only of public documents.
        let changed: Vec<String> = report
            .docs
            .iter()
            .filter(|d| d.changed)
            .filter_map(|d| {
                let f = cfg.feeds.iter().find(|f| f.name == d.feed)?;
                (f.access == Access::Public).then(|| f.url(&cfg.publish, d.ext))
            })
            .collect();
        if let Some(shelf) = &outlets.shelf {
            shelf.update(&cfg, std::mem::take(&mut report.docs), &report.archive_pages);
        }
        if let Some(tx) = &outlets.websub
            && !changed.is_empty()
        {
            let _ = tx.send(changed);
        }
        // Ready only once what was published is also what is served.
        crate::metrics::get().pass_done(report.failed == 0);
        crate::notify::status(|| status_line(&cfg, &store));
        Ok::<_, crate::store::Error>(report)
    })
    .await;
    match result {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            crate::metrics::get().pass_done(false);
            error!("publishing failed: {e}");
        }
        Err(e) => {
            crate::metrics::get().pass_done(false);
            error!("publishing panicked: {e}");
        }
    }
}

/// A one-line summary for systemd's STATUS=: articles, feeds, sources failing, last publish.
pub fn status_line(cfg: &Config, store: &Store) -> String {
    let failing = cfg
        .sources
        .iter()
        .filter(|s| s.enabled && store.source_state(&s.name).ok().flatten().is_some_and(|st| st.failures > 0))
        .count();
    let last = crate::metrics::get()
        .last_ok_publish()
        .map_or("not yet".to_string(), |t| t.with_timezone(&cfg.site.timezone).format("%H:%M:%S").to_string());
    format!(
        "{} articles, {} feeds, {} sources ({failing} failing); last clean publish {last}",
        store.len(),
        cfg.feeds.len(),
        cfg.sources.iter().filter(|s| s.enabled).count()
    )
}

/// The publish task: once at start, then on every cron tick and (with on_ingest) a debounce after
/// new articles. Never two publishes at once: one loop does them all. It is also the scheduler's
/// heartbeat: under a systemd watchdog it sends WATCHDOG=1 from this loop (at least every half
/// period, and after every publish), so a publish that hangs stops the pings and systemd restarts
/// siar; a separate timer would keep pinging while the work is stuck.
pub async fn run(cfg: Arc<Config>, store: Store, changed: Arc<Notify>, outlets: Outlets, stop: CancellationToken) {
    let publisher = Arc::new(Mutex::new(Publisher::default()));
    let watchdog = crate::notify::watchdog().map(|d| d / 2);
    publish_blocking(&publisher, &cfg, &store, &outlets).await;
    crate::notify::keepalive();
    loop {
        let Some(wait) = cfg.publish.schedule.until_next(Utc::now()) else {
            warn!("the publish schedule never fires again; publishing only after new articles");
            stop.cancelled().await;
            return;
        };
        tokio::select! {
            () = stop.cancelled() => return,
            // A tick landing a hair early would fire twice: wake just after it.
            () = tokio::time::sleep(wait + Duration::from_millis(5)) => {}
            () = changed.notified(), if cfg.publish.on_ingest => {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(cfg.publish.debounce) => {}
                }
            }
            () = tokio::time::sleep(watchdog.unwrap_or_default()), if watchdog.is_some() => {
                crate::notify::keepalive();
                continue;
            }
        }
        publish_blocking(&publisher, &cfg, &store, &outlets).await;
        crate::notify::keepalive();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn article(slug: &str, author: &str) -> Article {
        Article::sample(slug, &format!("Judul {slug}"), "2026-11-01T00:00:00+07:00", author)
    }

    #[test]
    fn one_unrenderable_article_is_left_out_not_the_feed() {
        let text = "[site]\ntitle = \"T\"\nlink = \"https://x.org/\"\n[[feed]]\nname = \"all\"\n";
        let cfg = Config::parse(text, Path::new("t.toml"), Path::new("/tmp")).expect("config");
        // An author of only control characters is empty once rendered: the gate refuses it.
        let articles = vec![article("a", "Ani"), article("b", "\u{1}"), article("c", "Cici")];
        assert!(render(&cfg, &cfg.feeds[0], &articles, Utc::now()).is_err());
        let (docs, kept) = render_without_bad_articles(&cfg, &cfg.feeds[0], articles, Utc::now(), View::default())
            .expect("rest published");
        assert_eq!(kept.iter().map(|a| a.slug.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(docs.len(), 3);
    }
}
