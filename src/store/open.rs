//! Opening the store, and refusing a damaged one. sled 0.34 recovers a damaged log by cutting it
//! at the first bad record, so a damaged store opens as a shorter or empty one and rewrites its
//! files as it does. Files exactly as siar's last clean close left them (the ledger's stamp) open
//! directly, with the counts that close recorded. Other files are copied aside and sled opens the
//! copy first; its time index is counted against the ledger's record of what the store held. A
//! shortfall, a sled error about its data, or a panic inside sled is `Error::Damaged`, and the
//! store's own files are left as they were.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Timelike, Utc};

use super::articles::id_key;
use super::ledger::{self, Ledger};
use super::{CACHE_BYTES, Error, SCHEMA_VERSION, Store, keys};
use crate::article::{self, Article};

/// What opening found, beside the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub articles: u64,
    pub removed: u64,
}

impl Store {
    /// Opens (or creates) the store at `path`, refusing it as damaged when it holds fewer
    /// articles than its ledger recorded, or when sled finds its data unreadable. A damaged
    /// store's files are left as they were.
    pub fn open(path: &Path) -> Result<Store, Error> {
        let io = |what: &str, source| Error::Io { path: path.to_path_buf(), what: what.to_string(), source };
        let recorded = read_ledger(path)?;
        if !ledger::has_store(path) {
            return Store::open_checked(path, recorded.as_ref(), None);
        }
        let Some(lock) = ledger::try_lock(path).map_err(|e| io("cannot lock it", e))? else {
            return Err(Error::Locked { path: path.to_path_buf() });
        };
        remove_stale_copies(path);
        let stamps = ledger::stamps(path).map_err(|e| io("cannot list its files", e))?;
        if let Some(l) = recorded.as_ref().filter(|l| l.clean.as_ref() == Some(&stamps)) {
            drop(lock);
            // The files are those the last clean close counted: no need to count them again
            // (a pass over the time index, 0.07 s for 60,000 articles).
            let known = Counts { articles: l.held.saturating_sub(l.removed), removed: l.removed };
            return Store::open_checked(path, recorded.as_ref(), Some(known));
        }
        // Not as the last clean close left it (a crash, a first open by this siar, or damage):
        // sled recovers (and rewrites) a copy first; the store itself is opened only if that is sound.
        let copy = checking_copy(path);
        ledger::copy_dir(path, &copy).map_err(|e| {
            let _ = std::fs::remove_dir_all(&copy);
            let what = format!(
                "cannot copy it to {} to check it before use (after a crash, siar keeps the files as they were until they are known sound)",
                copy.display()
            );
            io(&what, e)
        })?;
        let checked = Store::open_checked(&copy, recorded.as_ref(), None).map_err(|e| e.repath(path));
        let counts = match checked {
            Ok(store) => {
                let counts = store.counted();
                store.release();
                counts
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&copy);
                return Err(e);
            }
        };
        // Sound: sled recovers the store itself as it did the copy (the lock kept others out).
        let _ = std::fs::remove_dir_all(&copy);
        drop(lock);
        Store::open_checked(path, recorded.as_ref(), Some(counts))
    }

    /// Opens a copy of the store, never its own files (verify, export of a stopped store): sled
    /// recovers the copy as it would the store. The copy goes when the `Copy` does. `held` is
    /// what the ledger says the store held (`None` without a ledger).
    pub fn open_copy(path: &Path) -> Result<Copy, Error> {
        let io = |what: &str, source| Error::Io { path: path.to_path_buf(), what: what.to_string(), source };
        let recorded = read_ledger(path)?;
        let Some(lock) = ledger::try_lock(path).map_err(|e| io("cannot lock it", e))? else {
            return Err(Error::Locked { path: path.to_path_buf() });
        };
        let dir = checking_copy(path);
        let mut copy = Copy { store: None, dir: dir.clone(), held: recorded.as_ref().map(|l| l.held) };
        ledger::copy_dir(path, &dir).map_err(|e| io(&format!("cannot copy it to {}", dir.display()), e))?;
        drop(lock);
        let store = guarded(path, || Store::open_sled(&dir)).map_err(|e| e.repath(path))?;
        if let Some(l) = recorded {
            *store.recorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = l;
        }
        copy.store = Some(store);
        Ok(copy)
    }

    /// sled's open, the count (unless known), the check against the ledger, and a new ledger.
    fn open_checked(path: &Path, recorded: Option<&Ledger>, known: Option<Counts>) -> Result<Store, Error> {
        let (store, counts) = guarded(path, || {
            let store = Store::open_sled(path)?;
            let counts = match known {
                // What the store itself says it removed must agree, else count.
                Some(c) if store.removed_recorded()? == c.removed => c,
                _ => store.count()?,
            };
            Ok((store, counts))
        })?;
        if let Some(e) = shortfall(path, counts, recorded.map(|l| l.held)) {
            return Err(e);
        }
        *store.counts() = counts;
        if let Ok(mut p) = OPENED.lock() {
            *p = Some(path.to_path_buf());
        }
        let held = recorded.map_or(0, |l| l.held).max(counts.articles + counts.removed);
        match recorded {
            // Unchanged: kept as it is, its clean stamp too. The stamp describes the files, so
            // once sled writes to them it no longer matches (and a crash is told from a close),
            // while a store only read stays clean: no write, no fsync, at every open.
            Some(l) if l.held == held && l.removed == counts.removed => {
                *store.recorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = l.clone();
            }
            _ => store.record(Ledger::new(held, counts.removed))?,
        }
        Ok(store)
    }

    fn open_sled(path: &Path) -> Result<Store, Error> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(Some(500))
            .open()
            .map_err(|source| open_error(path, source))?;
        let sled_err = |source| Error::Sled { path: path.to_path_buf(), source };
        let tree = |name: &str| db.open_tree(name).map_err(sled_err);
        let meta = tree("meta")?;
        match meta.get("schema_version").map_err(sled_err)? {
            None => {
                meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes()).map_err(sled_err)?;
            }
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref()).map(u32::from_be_bytes).unwrap_or(0);
                if found != SCHEMA_VERSION {
                    return Err(Error::Schema { path: path.to_path_buf(), found });
                }
            }
        }
        let created = match meta.get("created").map_err(sled_err)? {
            Some(v) => String::from_utf8_lossy(&v).parse::<DateTime<Utc>>().ok(),
            None => None,
        };
        let created = match created {
            Some(c) => c,
            None => {
                let now = Utc::now().with_nanosecond(0).unwrap_or_else(Utc::now);
                meta.insert("created", now.to_rfc3339().as_bytes()).map_err(sled_err)?;
                now
            }
        };
        let store = Store {
            created,
            articles: tree("articles")?,
            by_date: tree("by_date")?,
            by_hash: tree("by_hash")?,
            history: tree("history")?,
            links: tree("links")?,
            stories: tree("stories")?,
            aliases: tree("aliases")?,
            pruned: tree("pruned")?,
            by_source: tree("by_source")?,
            sources: tree("sources")?,
            archives: tree("archives")?,
            meta: meta.clone(),
            path: path.to_path_buf(),
            db,
            counts: Default::default(),
            recorded: Default::default(),
            writers: Default::default(),
        };
        if meta.get("indexes").map_err(sled_err)?.is_none() {
            store.build_indexes()?;
            meta.insert("indexes", &2u32.to_be_bytes()).map_err(sled_err)?;
        }
        Ok(store)
    }

    /// Fills the per-source and dedupe indexes for a store written before they existed.
    fn build_indexes(&self) -> Result<(), Error> {
        for item in self.articles.iter().values() {
            let v = item.map_err(|e| self.err(e))?;
            let a: Article = serde_json::from_slice(&v).map_err(|e| self.corrupt(e))?;
            let k = keys::by_source(&a.source, &a.published, &a.key);
            self.by_source.insert(k, &[]).map_err(|e| self.err(e))?;
            for l in article::link_key(&a.link).into_iter().chain([id_key(&a.id)]) {
                self.links.insert(l.as_bytes(), a.key.as_bytes()).map_err(|e| self.err(e))?;
            }
            if let Some(h) = article::story_key(&a) {
                self.stories.insert(&h[..], a.key.as_bytes()).map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }

    /// Counts the articles and the removals recorded. The articles are counted in the time index
    /// (one entry per article, written in the same transaction): its pages are small, so the
    /// count costs little memory; reading every article would page in the whole store (200 MB for
    /// 60,000). A log cut short by damage loses both alike; `verify` reads the articles themselves.
    pub(super) fn count(&self) -> Result<Counts, Error> {
        let mut articles = 0;
        for k in self.by_date.iter().keys() {
            k.map_err(|e| self.err(e))?;
            articles += 1;
        }
        Ok(Counts { articles, removed: self.removed_recorded()? })
    }

    /// How many articles retention removed, as the store recorded it.
    pub(super) fn removed_recorded(&self) -> Result<u64, Error> {
        match self.meta.get("removed").map_err(|e| self.err(e))? {
            Some(v) => <[u8; 8]>::try_from(v.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| self.corrupt("meta/removed is not a count")),
            None => Ok(0),
        }
    }

    /// Flushes, lets go of sled, and once sled's threads have let go of its files too, stamps
    /// them in the ledger as clean: the next open then needs no copy. Without effect on the stamp
    /// while another handle of this store lives.
    pub fn close(self) -> Result<(), Error> {
        self.flush()?;
        let path = self.path.clone();
        let mut last = self.recorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let Some(lock) = self.release() else { return Ok(()) };
        let io = |what: &str, source| Error::Io { path: path.clone(), what: what.into(), source };
        let stamps = ledger::stamps(&path).map_err(|e| io("cannot list its files", e))?;
        if last.clean.as_ref() != Some(&stamps) {
            last.clean = Some(stamps);
            ledger::write(&path, &last).map_err(|e| io("cannot write its ledger", e))?;
        }
        drop(lock);
        Ok(())
    }

    /// Drops this handle and waits (2 s at most) until sled's threads have let go of the files;
    /// then holds sled's lock. `None` while other handles of the store live.
    fn release(self) -> Option<ledger::Lock> {
        let path = self.path.clone();
        if std::sync::Arc::strong_count(&self.counts) > 1 {
            return None;
        }
        drop(self);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(lock)) = ledger::try_lock(&path) {
                return Some(lock);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        None
    }
}

/// A copy of a store, open for reading; removed when dropped.
pub struct Copy {
    store: Option<Store>,
    dir: PathBuf,
    pub held: Option<u64>,
}

impl Copy {
    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("a copy holds its store until dropped")
    }

    /// The open check on the copy: damage when it holds fewer articles than the ledger recorded.
    pub fn check(&self, path: &Path) -> Result<(), Error> {
        let c = self.store().count().map_err(|e| e.into_damage(path).repath(path))?;
        shortfall(path, c, self.held).map_or(Ok(()), Err)
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        if let Some(s) = self.store.take() {
            let _ = s.release();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// sled's errors at open: its lock held elsewhere, data it cannot read (damage), or I/O.
fn open_error(path: &Path, source: sled::Error) -> Error {
    match &source {
        sled::Error::Io(e) if e.to_string().contains("lock") => Error::Locked { path: path.to_path_buf() },
        sled::Error::Io(e)
            if matches!(e.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData) =>
        {
            Error::damaged(path, format!("sled cannot read it: {e}"))
        }
        _ => Error::Sled { path: path.to_path_buf(), source },
    }
}

/// The ledger of the store at `path`; an unreadable one is damage.
fn read_ledger(path: &Path) -> Result<Option<Ledger>, Error> {
    ledger::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => Error::damaged(path, e.to_string()),
        _ => Error::Io { path: path.to_path_buf(), what: "cannot read its ledger".into(), source: e },
    })
}

/// Damage when the store holds fewer articles (stored + removed) than its ledger recorded.
fn shortfall(path: &Path, c: Counts, held: Option<u64>) -> Option<Error> {
    let held = held.filter(|&h| c.articles + c.removed < h)?;
    Some(Error::damaged(
        path,
        format!(
            "it opens with {} articles ({} removed by retention), but it is known to have held {held} (its \
             ledger {}); {} are missing",
            c.articles,
            c.removed,
            path.join(ledger::FILE).display(),
            held - c.articles - c.removed
        ),
    ))
}

/// Runs sled's part of an open: a panic inside it, or an error about its data, is damage.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    quietly(f)
        .unwrap_or_else(|panic| Err(Error::damaged(path, format!("sled panicked reading it ({panic})"))))
        .map_err(|e| e.into_damage(path))
}

/// `<state>.<what>-<UTC time>` beside the state directory (a free name).
pub fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path.file_name().map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut n = 1;
    loop {
        let candidate = if n == 1 { format!("{name}.{what}-{stamp}") } else { format!("{name}.{what}-{stamp}-{n}") };
        let p = path.with_file_name(candidate);
        if p.symlink_metadata().is_err() {
            return p;
        }
        n += 1;
    }
}

/// A copy to check, named after this process: `<state>.checking-<time>-p<pid>`.
fn checking_copy(path: &Path) -> PathBuf {
    let base = sibling(path, "checking");
    let mut name = base.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!("-p{}", std::process::id()));
    base.with_file_name(name)
}

/// Copies a crash left while a store was being checked (the store itself is where it was): those
/// of processes that are gone. Another process's copy in use is left alone.
fn remove_stale_copies(path: &Path) {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return };
    let prefix = format!("{}.checking-", name.to_string_lossy());
    let Ok(dir) = std::fs::read_dir(if parent.as_os_str().is_empty() { Path::new(".") } else { parent }) else {
        return;
    };
    for e in dir.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else { continue };
        let pid = rest.rsplit_once("-p").and_then(|(_, p)| p.parse::<i32>().ok());
        // SAFETY: kill with signal 0 only asks whether the process exists.
        let alive = pid.is_some_and(
            |p| unsafe { libc::kill(p, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM),
        );
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The store this process opened last, for the panic hook's message.
static OPENED: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// A panic inside sled after the store opened (a damaged page met on a read) ends the process
/// with 65 and the damaged-store message, printed by `report`; never 101, and never a daemon
/// that goes on without its store. Other panics go to the previous hook.
pub fn install_panic_hook(report: fn(&str)) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // In sled, or in siar's store code around it (which has no panic of its own: a test's
        // failpoint stands in for sled's).
        let in_sled =
            info.location().is_some_and(|l| l.file().contains("/sled-") || l.file().starts_with("src/store/"));
        let path = OPENED.lock().ok().and_then(|p| p.clone());
        let Some(path) = path.filter(|_| in_sled) else { return previous(info) };
        let msg = panic_message(info.payload());
        report(&Error::damaged(&path, format!("sled panicked reading it ({msg})")).to_string());
        std::process::exit(65);
    }));
}

/// Runs `f`, turning a panic into its message, without the panic hook's report on stderr (the
/// caller reports it, once).
fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.map_err(|p| panic_message(&*p))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}
