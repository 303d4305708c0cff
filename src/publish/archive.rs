//! RFC 5005 archived feeds: articles that leave a feed's newest-N window are kept reachable in
//! numbered archive pages (1 = oldest) under `<output>/<feed>/archive/<n>.rss|.atom|.json`,
//! chained by `prev-archive` / `next-archive` and pointing at `current`. A page's articles never
//! change once it is cut; the newest page gains its `next-archive` link when the next is cut.
//!
//! Articles waiting for a page (left the window, or older than it when they arrived) are cut into
//! a page once there are a page's worth, or once the oldest has waited an hour.

use std::collections::HashSet;
use std::path::PathBuf;

use chrono::Utc;
use tracing::{error, info};

use super::{View, render_without_bad_articles, selects, write};
use crate::article::Article;
use crate::config::{Config, Feed};
use crate::store::Store;

/// A partial page is cut once its oldest article has waited this long.
pub const PARTIAL_AFTER_MS: i64 = 3_600_000;
/// How often a long paging saves (and flushes) where it is: every 5 s or 100 pages.
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
const SAVE_PAGES: u32 = 100;

/// How far past the window a changed window looks for articles to archive.
const DEPTH: usize = 1000;

pub fn page_path(cfg: &Config, feed: &str, n: u32, ext: &str) -> PathBuf {
    cfg.paths.output.join(feed).join("archive").join(format!("{n}.{ext}"))
}

/// Brings a feed's archive up to date with the window just selected; returns how many pages
/// exist, or why the publish is refused (a published page would change its articles).
/// `verify`: re-create page files that are missing (the output directory was wiped).
pub fn update(
    cfg: &Config,
    feed: &Feed,
    store: &Store,
    window: &[Article],
    verify: bool,
) -> Result<Result<u32, String>, crate::store::Error> {
    let mut st = store.archive_state(&feed.name)?;
    let before = st.clone();
    let now = Utc::now().timestamp_millis();
    if verify {
        restore_missing(cfg, feed, store, st.pages)?;
    }
    let keys: Vec<String> = window.iter().map(|a| a.key.clone()).collect();
    if st.window != keys {
        let in_window: HashSet<&str> = keys.iter().map(String::as_str).collect();
        let first = st.window.is_empty() && st.pages == 0 && st.pending.is_empty();
        let depth = if first { usize::MAX } else { feed.limit + DEPTH };
        let waiting: HashSet<String> = st.pending.iter().map(|(k, _)| k.clone()).collect();
        let candidates = store.newest_keys(depth, |a| selects(feed, a))?;
        let mut fresh = Vec::new();
        for key in candidates.into_iter().rev() {
            // A mark on a page past the saved count is from a paging that crashed before saving:
            // that page is cut again, with the same articles.
            let archived = store.archived_on(&feed.name, &key)?.is_some_and(|p| p <= st.pages);
            if in_window.contains(key.as_str()) || waiting.contains(&key) || archived {
                continue;
            }
            fresh.push((key, now));
        }
        st.pending.retain(|(k, _)| !in_window.contains(k.as_str()));
        st.pending.extend(fresh);
        st.window = keys;
    }
    let size = feed.archive_page_size();
    // A first publish may page a long history: progress is saved as it goes (a stop, a crash or a
    // watchdog kill resumes there instead of starting over), and it keeps the watchdog fed.
    let mut saved = std::time::Instant::now();
    while due(&st.pending, size, now) {
        let take = size.min(st.pending.len());
        let page: Vec<(String, Option<u32>)> = st.pending[..take].iter().map(|(k, _)| (k.clone(), None)).collect();
        let articles = load(store, &page)?;
        if articles.is_empty() {
            st.pending.drain(..take);
            continue;
        }
        let n = st.pages + 1;
        let Some((docs, shown)) = render_page(cfg, feed, store, n, articles, None) else { break };
        if let Some(why) = page_changes(cfg, feed, store, n, &shown, None)? {
            return Ok(Err(why));
        }
        if !write_docs(cfg, feed, n, docs) {
            break;
        }
        let kept: Vec<(String, u32)> = shown.iter().map(|a| (a.key.clone(), a.version)).collect();
        store.put_archive_page(&feed.name, n, &kept)?;
        if n > 1 {
            let record = store.archive_page(&feed.name, n - 1)?.unwrap_or_default();
            let older = load(store, &record)?;
            if let Some((docs, shown)) = render_page(cfg, feed, store, n - 1, older, Some(n)) {
                if let Some(why) = page_changes(cfg, feed, store, n - 1, &shown, Some(&record))? {
                    return Ok(Err(why));
                }
                write_docs(cfg, feed, n - 1, docs);
            }
        }
        st.pages = n;
        st.pending.drain(..take);
        info!("feed {}: archive page {n} holds {} articles", feed.name, kept.len());
        crate::notify::progress();
        if saved.elapsed() >= SAVE_EVERY || n % SAVE_PAGES == 0 {
            store.put_archive_state(&feed.name, &st)?;
            store.flush()?;
            saved = std::time::Instant::now();
        }
    }
    if st != before {
        store.put_archive_state(&feed.name, &st)?;
    }
    Ok(Ok(st.pages))
}

/// Why page `n` may not be written showing `shown`: it was published with other articles.
/// Allowed: the same articles (a new `next-archive` link), fewer when retention removed the ones
/// that went (`record`: the page's recorded articles), any after a rebuild (the store that cut
/// the pages is gone).
fn page_changes(
    cfg: &Config,
    feed: &Feed,
    store: &Store,
    n: u32,
    shown: &[Article],
    record: Option<&crate::store::Page>,
) -> Result<Option<String>, crate::store::Error> {
    // The page re-rendered (a new `next-archive` link) with exactly its recorded articles: what
    // it was cut with, no need to read the file back (a first poll pages thousands).
    if let Some(record) = record
        && record.len() == shown.len()
        && shown.iter().zip(record).all(|(a, (k, v))| a.key == *k && v.is_none_or(|v| v == a.version))
    {
        return Ok(None);
    }
    let Some(published) = super::ondisk::ids_in_json_feed(&page_path(cfg, &feed.name, n, "json")) else {
        return Ok(None);
    };
    let old: HashSet<&str> = published.iter().map(String::as_str).collect();
    let new: HashSet<&str> = shown.iter().map(|a| a.id.as_str()).collect();
    if old == new || store.rebuilt()? {
        return Ok(None);
    }
    if new.is_subset(&old)
        && let Some(record) = record
    {
        let mut pruned = 0;
        for (key, _) in record {
            if store.is_pruned(key)? && store.get(key)?.is_none() {
                pruned += 1;
            }
        }
        if pruned >= old.len() - new.len() {
            return Ok(None);
        }
    }
    Ok(Some(format!(
        "archive page {n} was published with {} articles and would be cut again with {} ({} of them not on it); \
         published archive pages never change",
        old.len(),
        new.len(),
        new.difference(&old).count()
    )))
}

/// Whether a page should be cut now: a page's worth waiting, or the oldest waited long enough.
fn due(pending: &[(String, i64)], size: usize, now: i64) -> bool {
    !pending.is_empty() && (pending.len() >= size || now - pending[0].1 >= PARTIAL_AFTER_MS)
}

/// The articles still stored among `keys`, at the versions given (a page shows the versions it
/// was cut with), newest first (as in every feed document).
fn load(store: &Store, keys: &[(String, Option<u32>)]) -> Result<Vec<Article>, crate::store::Error> {
    let mut out = Vec::with_capacity(keys.len());
    for (k, version) in keys {
        if let Some(a) = store.article_at(k, *version)? {
            out.push(a);
        }
    }
    out.sort_by(|a, b| b.published.cmp(&a.published).then_with(|| b.key.cmp(&a.key)));
    Ok(out)
}

type Docs = Vec<(&'static str, Vec<u8>)>;

/// Page `n` rendered, and the articles it shows (a bad article is left out).
fn render_page(
    cfg: &Config,
    feed: &Feed,
    store: &Store,
    n: u32,
    articles: Vec<Article>,
    next: Option<u32>,
) -> Option<(Docs, Vec<Article>)> {
    let view = View { page: Some(n), prev: (n > 1).then(|| n - 1), next };
    match render_without_bad_articles(cfg, feed, articles, store.created(), view) {
        Ok(rendered) => Some(rendered),
        Err(e) => {
            error!("feed {}: archive page {n} cannot be rendered: {e}", feed.name);
            None
        }
    }
}

/// Writes a page's documents, each with its gzip form beside it (`<n>.<ext>.gz`): compressed
/// once, served by siar and by a static server's gzip_static alike.
fn write_docs(cfg: &Config, feed: &Feed, n: u32, docs: Docs) -> bool {
    for (ext, bytes) in docs {
        let path = page_path(cfg, &feed.name, n, ext);
        let gz_path = path.with_extension(format!("{ext}.gz"));
        let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
            // The page first: a gzip form older than its page is not used.
            write::write_if_changed(&path, &bytes)?;
            match write::gzip(&bytes) {
                Some(gz) => write::write_if_changed(&gz_path, &gz).map(|_| ()),
                None => Ok(()),
            }
        });
        if let Err(e) = written {
            error!("cannot write {}: {e}; the archive waits for the next publish", path.display());
            return false;
        }
    }
    true
}

fn restore_missing(cfg: &Config, feed: &Feed, store: &Store, pages: u32) -> Result<(), crate::store::Error> {
    for n in 1..=pages {
        if super::FORMATS.iter().all(|ext| page_path(cfg, &feed.name, n, ext).exists()) {
            continue;
        }
        let articles = load(store, &store.archive_page(&feed.name, n)?.unwrap_or_default())?;
        let rendered = render_page(cfg, feed, store, n, articles, (n < pages).then(|| n + 1));
        if rendered.is_some_and(|(docs, _)| write_docs(cfg, feed, n, docs)) {
            info!("feed {}: archive page {n} was missing; written again", feed.name);
        }
        crate::notify::progress();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_cut_when_full_or_when_the_oldest_waited_an_hour() {
        let p = |n: usize, at: i64| (0..n).map(|i| (format!("k{i}"), at)).collect::<Vec<_>>();
        assert!(!due(&[], 3, 0));
        assert!(!due(&p(2, 0), 3, PARTIAL_AFTER_MS - 1));
        assert!(due(&p(2, 0), 3, PARTIAL_AFTER_MS));
        assert!(due(&p(3, 0), 3, 0));
    }
}
