//! The store: every article, its history and its indexes in one sled database. The only code that
//! names trees or builds keys. Writes of one article and its index entries are one transaction;
//! durability comes from `flush`, which callers run once per batch before acknowledging input.

mod archives;
mod articles;
pub mod export;
mod keys;
pub mod ledger;
mod merge;
mod open;
mod retention;
mod sources;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sled::Tree;

use crate::article::{self, Article};

pub use archives::{ArchiveState, Page, Published};
pub use open::{Copy, Counts, install_panic_hook, sibling};
pub use sources::SourceState;

const SCHEMA_VERSION: u32 = 1;
/// sled's default cache is 1 GiB; a feed store needs far less.
const CACHE_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the store {path} is in use by another process (a running siar?)")]
    Locked { path: PathBuf },
    #[error("the store {path} is damaged: {detail}. {NEXT_STEP}")]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "the store {path} has schema version {found}, this siar knows {SCHEMA_VERSION}; use a matching siar, or `siar export` with it and `siar import` here"
    )]
    Schema { path: PathBuf, found: u32 },
    #[error("store {path}: {}{}", describe(.source), if self_is_damage(.source) { DAMAGED_NEXT } else { "" })]
    Sled { path: PathBuf, source: sled::Error },
    #[error("store {path}: {what}: {}", describe_io(.source))]
    Io { path: PathBuf, what: String, source: std::io::Error },
    /// An export that cannot be read (the file's fault, not the store's).
    #[error("the export {file}, line {line}: {what}")]
    Import { file: String, line: usize, what: String },
}

/// What kind of failure a store error is, for callers choosing what to do (exit codes, retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The data is damaged or of another format: retrying cannot help.
    Damaged,
    /// Another process holds the store.
    Locked,
    /// I/O failed (full disk, permissions): may pass.
    Unavailable,
}

impl Error {
    pub(crate) fn damaged(path: &Path, detail: impl Into<String>) -> Error {
        Error::Damaged { path: path.to_path_buf(), detail: detail.into() }
    }

    /// A sled error about its data, at open, in the words of a damaged store.
    fn into_damage(self, path: &Path) -> Error {
        match self {
            Error::Sled { source, .. } if self_is_damage(&source) => Error::damaged(path, describe(&source)),
            e => e,
        }
    }

    /// The same error about another path (a checked copy stands for the store).
    fn repath(self, to: &Path) -> Error {
        let to = to.to_path_buf();
        match self {
            Error::Locked { .. } => Error::Locked { path: to },
            Error::Damaged { detail, .. } => Error::Damaged { path: to, detail },
            Error::Schema { found, .. } => Error::Schema { path: to, found },
            Error::Sled { source, .. } => Error::Sled { path: to, source },
            Error::Io { what, source, .. } => Error::Io { path: to, what, source },
            e @ Error::Import { .. } => e,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Damaged { .. } | Error::Schema { .. } | Error::Import { .. } => ErrorKind::Damaged,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::Sled { source, .. } if self_is_damage(source) => ErrorKind::Damaged,
            Error::Sled { .. } => ErrorKind::Unavailable,
            Error::Io { .. } => ErrorKind::Unavailable,
        }
    }

    pub fn is_damage(&self) -> bool {
        self.kind() == ErrorKind::Damaged
    }

    /// The OS error under an I/O failure (EROFS, ENOSPC...), if any.
    pub fn os_error(&self) -> Option<i32> {
        match self {
            Error::Sled { source: sled::Error::Io(e), .. } | Error::Io { source: e, .. } => e.raw_os_error(),
            _ => None,
        }
    }
}

/// Corruption, an unsupported (foreign) format, a bug report, a missing tree: not I/O.
fn self_is_damage(e: &sled::Error) -> bool {
    !matches!(e, sled::Error::Io(_))
}

/// What to do about damage met after the store opened.
const DAMAGED_NEXT: &str = "; the store is damaged: stop siar, then `siar verify` and `siar rebuild` (README: \
    Recovering a damaged store)";

const NEXT_STEP: &str = "Nothing was published from it and its files are left as they were. Next: `siar verify` \
    lists what is wrong; `siar rebuild` moves the store aside and builds it again from the drop folder's done/ \
    (and `--from` an export, if you have one), keeping the articles' ids (README: Recovering a damaged store)";

/// sled's errors in words (its own Display shows the Debug form), with what to do.
fn describe(e: &sled::Error) -> String {
    match e {
        sled::Error::Io(io) => describe_io(io),
        sled::Error::Corruption { .. } => "sled found corrupted data".to_string(),
        sled::Error::Unsupported(what) => format!("sled cannot read this format: {what}"),
        other => other.to_string(),
    }
}

fn describe_io(io: &std::io::Error) -> String {
    if io.kind() == std::io::ErrorKind::StorageFull {
        "no space left on device: free space on that disk; siar exits 75 (temporary) and systemd restarts it"
            .to_string()
    } else {
        io.to_string()
    }
}

/// What `put` did with an incoming article.
#[derive(Debug, Clone)]
pub enum Outcome {
    Inserted(Article),
    Updated(Article),
    /// Same article key, nothing a reader sees changed.
    Unchanged(String),
    /// The same file bytes were stored before (under any name).
    Duplicate(String),
    /// The same story, stored before from another source: recorded as its provenance (the key
    /// of the article it joined).
    Merged(String),
    /// Retention removed this item before: it is not brought back.
    Pruned(String),
}

/// One article for `put_many`, with what the merge needs to know.
#[derive(Debug, Clone)]
pub struct Put {
    pub article: Article,
    /// The article named its own date, so an update may move it.
    pub explicit_date: bool,
    /// blake3 of the source bytes of a drop file: the same bytes again are a duplicate.
    pub file_hash: Option<[u8; 32]>,
    /// Cross-source dedupe keys: the normalized link (when the link is the item's own) and the
    /// story hash (title + substantial body).
    pub link_key: Option<String>,
    pub story_key: Option<[u8; 32]>,
}

impl Put {
    /// A put with the dedupe keys computed from the article; `own_link` is false when the link
    /// is a stand-in (an item that named none).
    pub fn new(article: Article, explicit_date: bool, file_hash: Option<[u8; 32]>, own_link: bool) -> Put {
        let link_key = if own_link { article::link_key(&article.link) } else { None };
        let story_key = (article.source != article::DROP_SOURCE).then(|| article::story_key(&article)).flatten();
        Put { article, explicit_date, file_hash, link_key, story_key }
    }
}

#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    created: DateTime<Utc>,
    db: sled::Db,
    articles: Tree,
    by_date: Tree,
    by_hash: Tree,
    history: Tree,
    links: Tree,
    stories: Tree,
    aliases: Tree,
    pruned: Tree,
    by_source: Tree,
    sources: Tree,
    /// RFC 5005 archive pages per feed: `<feed>\0state` -> ArchiveState, `<feed>\0page\0<n BE>`
    /// -> the page's keys, `<feed>\0key\0<key>` -> the page holding the article.
    archives: Tree,
    /// `schema_version`, `created`, `indexes`, `on_disk` (the public feeds written, per output),
    /// `removed` (articles retention removed, a u64).
    meta: Tree,
    /// Articles stored and removed, kept in step with the trees (after each commit).
    counts: Arc<Mutex<open::Counts>>,
    /// The ledger as last written.
    recorded: Arc<Mutex<ledger::Ledger>>,
    /// Puts and prunes hold it shared; a live `verify` or `export` holds it alone, so that what
    /// it reads is one state of the articles and their indexes.
    writers: Arc<std::sync::RwLock<()>>,
}

impl Store {
    /// When this store was created: the `updated` time of a feed that has no articles yet
    /// (stable across publishes, unlike the clock).
    pub fn created(&self) -> DateTime<Utc> {
        self.created
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: sled::Error) -> Error {
        Error::Sled { path: self.path.clone(), source }
    }

    fn corrupt(&self, detail: impl std::fmt::Display) -> Error {
        Error::damaged(&self.path, format!("a stored record is unreadable: {detail}"))
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, open::Counts> {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Articles stored and removed by retention, as counted at open and kept since.
    pub fn counted(&self) -> open::Counts {
        *self.counts()
    }

    /// Writes the ledger when what it says changed; never lowers what it says was held.
    fn record(&self, new: ledger::Ledger) -> Result<(), Error> {
        let mut last = self.recorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = new.held.max(last.held);
        if last.format != 0 && held == last.held && new.removed == last.removed {
            return Ok(());
        }
        let l = ledger::Ledger::new(held, new.removed.max(last.removed));
        ledger::write(&self.path, &l).map_err(|source| Error::Io {
            path: self.path.clone(),
            what: format!("cannot write its ledger {}", self.path.join(ledger::FILE).display()),
            source,
        })?;
        *last = l;
        Ok(())
    }

    /// Makes everything written so far durable (fsync), then records the counts in the ledger.
    /// Blocks: call it off the async runtime.
    pub fn flush(&self) -> Result<(), Error> {
        // Counted before the flush: what the ledger then says is durable.
        let c = self.counted();
        self.db.flush().map_err(|e| self.err(e))?;
        self.record(ledger::Ledger::new(c.articles + c.removed, c.removed))
    }

    /// Articles stored (kept in step with every put and prune, not a scan: `/metrics` and the
    /// status line after each publish ask).
    pub fn len(&self) -> usize {
        usize::try_from(self.counted().articles).unwrap_or(usize::MAX)
    }

    /// Holds off puts and prunes while the guard lives (a live `verify` or `export`).
    pub fn quiesce(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.writers.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn writing(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.writers.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether retention removed the article with this key.
    pub fn is_pruned(&self, key: &str) -> Result<bool, Error> {
        self.pruned.contains_key(key.as_bytes()).map_err(|e| self.err(e))
    }

    /// What the ledger says this store held (stored + removed by retention).
    pub fn held(&self) -> u64 {
        self.recorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).held
    }

    /// A cheap read that fails when the store does (for readiness checks).
    pub fn ping(&self) -> Result<(), Error> {
        self.articles.first().map(|_| ()).map_err(|e| self.err(e))
    }

    pub fn is_empty(&self) -> bool {
        self.articles.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::Article;

    fn article(slug: &str, title: &str, published: &str) -> Article {
        Article::sample(slug, title, published, "A")
    }

    /// Opens a store just closed in this process: sled's background flusher may hold the lock a
    /// moment after the last handle is dropped.
    fn reopen(path: &Path) -> Result<Store, Error> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Store::open(path) {
                Err(Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other,
            }
        }
    }

    #[test]
    fn insert_update_duplicate_and_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let now = Utc::now();
        let a = article("a", "First", "2026-11-01T00:00:00Z");
        assert!(matches!(store.put(a.clone(), false, &[1; 32], now).expect("put"), Outcome::Inserted(_)));
        assert!(
            matches!(store.put(a.clone(), false, &[1; 32], now).expect("put"), Outcome::Duplicate(k) if k == "drop/a")
        );
        assert!(matches!(store.put(a.clone(), false, &[2; 32], now).expect("put"), Outcome::Unchanged(_)));
        let mut edited = article("a", "First, corrected", "2026-11-05T00:00:00Z");
        edited.id = "tag:would-be-new".into();
        let Outcome::Updated(u) = store.put(edited, false, &[3; 32], now).expect("put") else { panic!("not updated") };
        assert_eq!(u.id, a.id, "the id never changes");
        assert_eq!(u.version, 2);
        assert_eq!(u.published, a.published, "no explicit date: keeps the first one");
        assert!(u.updated > a.updated);
        assert_eq!(store.history("drop/a").expect("history"), vec![a]);
        // Many edits within one second: each later than the last, by milliseconds, not seconds.
        let mut last = u.updated;
        for i in 0..5u8 {
            let e = article("a", &format!("edit {i}"), "2026-11-05T00:00:00Z");
            let Outcome::Updated(v) = store.put(e, false, &[10 + i; 32], now).expect("put") else {
                panic!("not updated")
            };
            assert!(
                v.updated > last && v.updated - last <= chrono::Duration::milliseconds(1),
                "{} after {last}",
                v.updated
            );
            last = v.updated;
        }
        assert_eq!(store.newest(10, |_| true).expect("newest").len(), 1);
    }

    #[test]
    fn newest_first_with_filter_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            for (i, day) in ["03", "01", "02"].iter().enumerate() {
                let a = article(&format!("s{day}"), "t", &format!("2026-11-{day}T00:00:00Z"));
                store.put(a, false, &[i as u8; 32], Utc::now()).expect("put");
            }
            store.flush().expect("flush");
        }
        let store = reopen(dir.path()).expect("reopen");
        let keys: Vec<String> = store.newest(2, |_| true).expect("newest").into_iter().map(|a| a.slug).collect();
        assert_eq!(keys, ["s03", "s02"]);
        let keys: Vec<String> =
            store.newest(5, |a| a.slug != "s02").expect("newest").into_iter().map(|a| a.slug).collect();
        assert_eq!(keys, ["s03", "s01"]);
    }

    #[test]
    fn a_store_of_another_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = sled::open(dir.path()).expect("sled");
            db.open_tree("meta").expect("tree").insert("schema_version", &99u32.to_be_bytes()).expect("insert");
            db.flush().expect("flush");
        }
        let err = reopen(dir.path()).err().expect("refused");
        assert!(matches!(err, Error::Schema { found: 99, .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::Damaged);
    }

    #[test]
    fn fewer_articles_than_the_ledger_recorded_is_damage_and_the_bytes_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        {
            let store = Store::open(&path).expect("open");
            for i in 0..3u8 {
                store
                    .put(article(&format!("s{i}"), "t", "2026-11-01T00:00:00Z"), false, &[i; 32], Utc::now())
                    .expect("put");
            }
            store.close().expect("close");
        }
        let l = ledger::read(&path).expect("read").expect("a ledger");
        assert_eq!(l.held, 3);
        assert!(l.clean.is_some(), "a clean close stamps the files");
        // Reopened clean: no copy is made, and the counts are those of before.
        let store = reopen(&path).expect("reopen");
        assert_eq!(store.counted().articles, 3);
        store.close().expect("close");
        let mut l = ledger::read(&path).expect("read").expect("a ledger");
        l.held = 5;
        l.clean = None;
        ledger::write(&path, &l).expect("write");
        let err = reopen(&path).err().expect("refused");
        assert_eq!(err.kind(), ErrorKind::Damaged, "{err}");
        let text = err.to_string();
        assert!(text.contains("known to have held 5") && text.contains("siar rebuild"), "{text}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1, "no copy is left beside the store");
    }

    #[test]
    fn a_second_open_is_refused_as_locked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = Store::open(dir.path()).expect("open");
        // sled locks per process with flock; a second process is what matters, exercised in the
        // integration tests. In one process sled refuses too.
        match Store::open(dir.path()) {
            Err(Error::Locked { .. }) => {}
            Ok(_) => panic!("second open succeeded"),
            Err(e) => panic!("unexpected: {e}"),
        }
    }
}
