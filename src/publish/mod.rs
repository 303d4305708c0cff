//! Publish: store -> RSS 2.0, Atom 1.0 and JSON Feed files, per configured feed, on the cron
//! schedule and soon after new articles. Reads the store, writes only the output directory.
//! Output is deterministic: the same store gives the same bytes; unchanged files are not rewritten.

mod atom;
mod json;
mod rss;
pub mod validate;
pub mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::article::Article;
use crate::config::{Config, Feed, Site};
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
}

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
    let doc = FeedDoc {
        feed,
        site: &cfg.site,
        id: feed.id.clone().unwrap_or_else(|| feed.url(&cfg.publish, "atom")),
        urls: Urls {
            rss: feed.url(&cfg.publish, "rss"),
            atom: feed.url(&cfg.publish, "atom"),
            json: feed.url(&cfg.publish, "json"),
        },
        updated: articles.iter().map(|a| a.updated).max().unwrap_or(empty_updated),
        articles,
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
) -> Result<(Docs, Vec<Article>), String> {
    let first_error = match render(cfg, feed, &articles, empty_updated) {
        Ok(docs) => return Ok((docs, articles)),
        Err(e) => e,
    };
    let (good, bad): (Vec<Article>, Vec<Article>) =
        articles.into_iter().partition(|a| render(cfg, feed, std::slice::from_ref(a), empty_updated).is_ok());
    if bad.is_empty() {
        return Err(first_error);
    }
    for a in &bad {
        let why = render(cfg, feed, std::slice::from_ref(a), empty_updated).err().unwrap_or_default();
        error!("feed {}: leaving out article {} ({}): {why}", feed.name, a.key, a.origin);
    }
    render(cfg, feed, &good, empty_updated).map(|docs| (docs, good))
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    pub written: usize,
    pub unchanged: usize,
    pub failed: usize,
}

/// Publishes feeds, remembering what it last published: a feed whose articles have not changed
/// since (and whose files are still there) is not rendered again, so cron ticks cost a store scan.
#[derive(Default)]
pub struct Publisher {
    published: HashMap<String, blake3::Hash>,
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
fn fingerprint(articles: &[Article]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
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
            let articles = select(feed, store)?;
            let print = fingerprint(&articles);
            let paths = FORMATS.map(|ext| cfg.paths.output.join(format!("{}.{ext}", feed.name)));
            if self.published.get(&feed.name) == Some(&print) && paths.iter().all(|p| p.exists()) {
                report.unchanged += 3;
                continue;
            }
            let (docs, articles) = match render_without_bad_articles(cfg, feed, articles, store.created()) {
                Ok(d) => d,
                Err(e) => {
                    report.failed += 3;
                    error!("feed {}: not published, the previous files stay: {e}", feed.name);
                    continue;
                }
            };
            let mut all_ok = true;
            for ((_, bytes), path) in docs.iter().zip(&paths) {
                match write::write_if_changed(path, bytes) {
                    Ok(true) => {
                        report.written += 1;
                        info!("wrote {} ({} items, {} bytes)", path.display(), articles.len(), bytes.len());
                    }
                    Ok(false) => {
                        report.unchanged += 1;
                        debug!("{} unchanged", path.display());
                    }
                    Err(e) => {
                        all_ok = false;
                        report.failed += 1;
                        error!("cannot write {}: {e}; the previous file stays", path.display());
                    }
                }
            }
            if all_ok {
                self.published.insert(feed.name.clone(), print);
            } else {
                self.published.remove(&feed.name);
            }
        }
        debug!("publish pass took {:?}", started.elapsed());
        Ok(report)
    }
}

async fn publish_blocking(publisher: &Arc<Mutex<Publisher>>, cfg: &Arc<Config>, store: &Store) {
    let (publisher, cfg, store) = (publisher.clone(), cfg.clone(), store.clone());
    let result = tokio::task::spawn_blocking(move || {
        let mut publisher = publisher.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        publisher.publish_all(&cfg, &store)
    })
    .await;
    match result {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => error!("publishing failed: {e}"),
        Err(e) => error!("publishing panicked: {e}"),
    }
}

/// The publish task: once at start, then on every cron tick and (with on_ingest) a debounce after
/// new articles. Never two publishes at once: one loop does them all.
pub async fn run(cfg: Arc<Config>, store: Store, changed: Arc<Notify>, stop: CancellationToken) {
    let publisher = Arc::new(Mutex::new(Publisher::default()));
    publish_blocking(&publisher, &cfg, &store).await;
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
        }
        publish_blocking(&publisher, &cfg, &store).await;
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
        let (docs, kept) =
            render_without_bad_articles(&cfg, &cfg.feeds[0], articles, Utc::now()).expect("rest published");
        assert_eq!(kept.iter().map(|a| a.slug.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(docs.len(), 3);
    }
}
