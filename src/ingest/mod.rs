//! Ingest: the drop folder task. Scans the folder (the scan is the truth; inotify only wakes it),
//! turns each settled file into an `Article`, commits a batch to the store, flushes, and only then
//! moves the files to `done/` (or `failed/` with a note). Never touches publish or output files.

mod article;
mod decode;
pub mod dropfolder;
mod markdown;
mod text;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

pub use article::{Incoming, build, parse_date};
pub use dropfolder::DropFolder;

use crate::article::Dateline;
use crate::config::Config;
use crate::store::{Outcome, Put, Store};

/// Why a file cannot be ingested: a short machine code and one or two lines for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub code: &'static str,
    pub reason: String,
}

impl Reject {
    pub fn new(code: &'static str, reason: impl Into<String>) -> Reject {
        Reject { code, reason: reason.into() }
    }
}

/// What a parser made of a file before header keys and defaults are applied.
#[derive(Debug, Default)]
pub struct Draft {
    pub meta: Meta,
    pub derived_title: String,
    pub derived_summary: String,
    pub content_html: String,
    /// A Markdown body, rendered once the article's link (the base of its relative URLs) is known.
    pub markdown: Option<String>,
    pub dateline: Option<Dateline>,
    pub credits: Vec<String>,
}

/// Header or front-matter keys in file order; known keys are looked up case-insensitively by alias.
#[derive(Debug, Default)]
pub struct Meta {
    entries: Vec<(String, Vec<String>)>,
}

/// Known keys and their aliases; the first name is the canonical one.
const KNOWN: &[&[&str]] = &[
    &["title"],
    &["author", "authors", "byline"],
    &["date", "published", "pubdate"],
    &["category", "categories"],
    &["tags", "tag", "keywords"],
    &["summary", "description"],
    &["lang", "language"],
    &["slug"],
    &["link", "url"],
    &["draft"],
];

impl Meta {
    fn aliases(key: &str) -> Option<&'static [&'static str]> {
        let k = key.to_ascii_lowercase();
        KNOWN.iter().copied().find(|names| names.contains(&k.as_str()))
    }

    pub fn is_known(key: &str) -> bool {
        Meta::aliases(key).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn push(&mut self, key: &str, value: &str) {
        self.push_list(key, vec![value.to_string()]);
    }

    pub fn push_list(&mut self, key: &str, values: Vec<String>) {
        self.entries.push((key.to_string(), values));
    }

    fn matching(&self, key: &str) -> impl Iterator<Item = &Vec<String>> {
        let names = Meta::aliases(key).unwrap_or(&[]);
        self.entries.iter().filter(move |(k, _)| names.contains(&k.to_ascii_lowercase().as_str())).map(|(_, v)| v)
    }

    /// The first non-empty value of a known key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.matching(key).flatten().map(|v| v.trim()).find(|v| !v.is_empty())
    }

    /// Every value of a known key; comma-separated values are split. Duplicates are dropped.
    pub fn list(&self, key: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for v in self.matching(key).flatten() {
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if seen.insert(item.to_lowercase()) {
                    out.push(item.to_string());
                }
            }
        }
        out
    }

    /// Keys siar does not interpret, kept as extra metadata.
    pub fn extra(&self) -> BTreeMap<String, String> {
        self.entries.iter().filter(|(k, _)| !Meta::is_known(k)).map(|(k, v)| (k.clone(), v.join(", "))).collect()
    }
}

/// Counts of one pass over the drop folder.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassReport {
    pub stored: usize,
    pub unchanged: usize,
    pub rejected: usize,
    /// Files seen but not yet settled (or changing while read); the soonest one is ready after this.
    pub waiting: Option<Duration>,
}

/// Files per store flush: one fsync covers a whole batch.
const BATCH_FILES: usize = 1024;
const BATCH_TIME: Duration = Duration::from_millis(500);

/// One pass: ingest every settled file in the folder, in batches of one flush each.
/// Stops between files when `stop` is cancelled (the file in hand is finished and acknowledged).
pub fn pass(
    folder: &mut DropFolder,
    cfg: &Config,
    store: &Store,
    stop: &CancellationToken,
) -> Result<PassReport, crate::store::Error> {
    let mut report = PassReport::default();
    // The watchdog's view of this loop: busy and moving until the pass ends (however it ends).
    struct Pass;
    impl Drop for Pass {
        fn drop(&mut self) {
            crate::notify::INGEST.idle();
        }
    }
    let _pass = Pass;
    crate::notify::INGEST.beat();
    let scan = folder.scan(SystemTime::now());
    report.waiting = scan.waiting;
    let mut ready = scan.ready.into_iter().peekable();
    while ready.peek().is_some() && !stop.is_cancelled() {
        let started = Instant::now();
        let mut accepted: Vec<dropfolder::Entry> = Vec::new();
        let mut puts: Vec<Put> = Vec::new();
        let mut failed: Vec<(dropfolder::Entry, Reject, Option<[u8; 32]>)> = Vec::new();
        while accepted.len() + failed.len() < BATCH_FILES && started.elapsed() < BATCH_TIME && !stop.is_cancelled() {
            let Some(entry) = ready.next() else { break };
            crate::notify::INGEST.beat();
            crate::failpoint::hit("ingest-file");
            let (bytes, mtime) = match folder.read(&entry) {
                Ok(Some(read)) => read,
                Ok(None) => {
                    report.waiting = Some(report.waiting.map_or(folder.settle(), |w| w.min(folder.settle())));
                    continue;
                }
                Err(reject) => {
                    failed.push((entry, reject, None));
                    continue;
                }
            };
            match build(cfg, &entry.name_text(), &bytes, DateTime::<Utc>::from(mtime), Utc::now()) {
                Ok(incoming) => {
                    puts.push(Put::new(incoming.article, incoming.explicit_date, Some(incoming.file_hash), true));
                    accepted.push(entry);
                }
                Err(reject) => failed.push((entry, reject, Some(*blake3::hash(&bytes).as_bytes()))),
            }
        }
        // One transaction for the batch, one flush: durable first, then acknowledge by moving files.
        let outcomes = if puts.is_empty() { Vec::new() } else { store.put_many(&puts, Utc::now())? };
        let mut done: Vec<(dropfolder::Entry, String)> = Vec::new();
        for (entry, outcome) in accepted.into_iter().zip(outcomes) {
            let (stored, line) = match &outcome {
                Outcome::Inserted(a) => (true, format!("new article {} ({}) \"{}\"", a.key, a.id, a.title)),
                Outcome::Updated(a) => (true, format!("updated article {} to version {} ({})", a.key, a.version, a.id)),
                Outcome::Unchanged(key) => (false, format!("no change to article {key}")),
                Outcome::Duplicate(key) => (false, format!("duplicate of article {key} (same bytes), nothing new")),
                Outcome::Merged(key) | Outcome::Pruned(key) => (false, format!("already known as article {key}")),
            };
            // A file retried because it could not be moved out was counted at its first try.
            if !folder.is_stuck(&entry) {
                *(if stored { &mut report.stored } else { &mut report.unchanged }) += 1;
            }
            done.push((entry, line));
        }
        if !done.is_empty() {
            store.flush()?;
            crate::notify::INGEST.beat();
        }
        for (entry, line) in done {
            let moved = folder.archive(&entry);
            let failed_again = folder.note_move(&entry, moved.is_ok());
            match moved {
                Ok(Some(to)) => info!("ingested {}: {line}; moved to {}", entry.display_name(), dropfolder::shown(&to)),
                Ok(None) => info!(
                    "ingested {}: {line}; a new version replaced it meanwhile and is read next",
                    entry.display_name()
                ),
                Err(e) if !failed_again => error!(
                    "ingested {} ({line}) but cannot move it to {}: {e}; it stays in the drop folder and is \
                     retried every rescan (logged once)",
                    entry.display_name(),
                    folder.done_dir().display()
                ),
                Err(e) => {
                    debug!("{}: still cannot move it to {}: {e}", entry.display_name(), folder.done_dir().display())
                }
            }
        }
        for (entry, reject, hash) in failed {
            // A retry (the file could not be moved out before) was counted at its first try.
            if !folder.is_stuck(&entry) {
                report.rejected += 1;
            }
            let moved = folder.reject(&entry, &reject, hash);
            // A retry that fails again is not logged again.
            let failed_again = folder.note_move(&entry, moved.is_ok());
            match moved {
                Ok(None) => {
                    info!("{} was replaced while being read; the new version is read next", entry.display_name())
                }
                Ok(Some(to)) => warn!(
                    "rejected {}: {} [{}]; moved to {}",
                    entry.display_name(),
                    reject.reason,
                    reject.code,
                    dropfolder::shown(&to)
                ),
                Err(e) if !failed_again => error!(
                    "rejected {}: {} [{}], but cannot move it to {}: {e}; it stays in the drop folder and is \
                     retried every rescan (logged once)",
                    entry.display_name(),
                    reject.reason,
                    reject.code,
                    folder.failed_dir().display()
                ),
                Err(e) => {
                    debug!("{}: still cannot move it to {}: {e}", entry.display_name(), folder.failed_dir().display())
                }
            }
        }
        folder.sync();
    }
    crate::metrics::get().ingested(report.stored, report.unchanged, report.rejected);
    Ok(report)
}

/// `run --once`: passes until nothing is left, waiting out the settle time of files that just arrived.
pub fn drain(cfg: &Config, store: &Store, stop: &CancellationToken) -> Result<PassReport, crate::store::Error> {
    let mut folder = DropFolder::new(&cfg.paths.drop, &cfg.ingest);
    let mut total = PassReport::default();
    loop {
        let r = pass(&mut folder, cfg, store, stop)?;
        total.stored += r.stored;
        total.unchanged += r.unchanged;
        total.rejected += r.rejected;
        let progressed = r.stored + r.unchanged + r.rejected > 0;
        match r.waiting {
            _ if stop.is_cancelled() => return Ok(total),
            Some(wait) => std::thread::sleep(wait.min(Duration::from_millis(500)).max(Duration::from_millis(20))),
            None if progressed => {}
            None => return Ok(total),
        }
    }
}

/// The ingest task: a pass at start, then on every watcher wake-up, settle deadline or rescan tick.
/// A store error is sticky (sled cannot go on after an I/O error): it stops the whole daemon,
/// files stay in the drop folder, and the error is returned for the exit code.
pub async fn run(
    cfg: Arc<Config>,
    store: Store,
    changed: Arc<Notify>,
    scanned: Arc<Notify>,
    stop: CancellationToken,
) -> Result<(), crate::store::Error> {
    let wake = Arc::new(Notify::new());
    let _watcher = if cfg.ingest.watch { dropfolder::watch(&cfg.paths.drop, wake.clone()) } else { None };
    let mut folder = DropFolder::new(&cfg.paths.drop, &cfg.ingest);
    // READY=1 waits for the first listing of the drop folder, not for a backlog to be ingested
    // (systemd's start timeout would end a long first pass).
    folder.tell_when_listed(scanned);
    loop {
        let (cfg2, store2, stop2) = (cfg.clone(), store.clone(), stop.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let r = pass(&mut folder, &cfg2, &store2, &stop2);
            (folder, r)
        })
        .await;
        let (back, result) = match joined {
            Ok(v) => v,
            Err(e) => {
                error!("ingest pass panicked: {e}; stopping siar");
                stop.cancel();
                return Ok(());
            }
        };
        folder = back;
        let mut next = cfg.ingest.rescan;
        match result {
            Ok(r) => {
                if r.stored > 0 {
                    changed.notify_one();
                }
                if let Some(w) = r.waiting {
                    next = next.min(w.max(Duration::from_millis(50)));
                }
            }
            Err(e) => {
                error!("the store failed: {e}; stopping siar; unacknowledged files stay in the drop folder");
                stop.cancel();
                return Err(e);
            }
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(next) => {}
            () = wake.notified() => {
                // Let a burst of renames land before scanning.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
