//! The drop folder on disk: which files are ready (settled, regular, not temporary), reading them
//! without following links, and acknowledging them by moving them to `done/` or `failed/` (with a
//! `.error` note). Nothing here is ever deleted or overwritten.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::Reject;
use crate::config::Ingest;

pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

/// A file seen in the drop folder.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: OsString,
    size: u64,
    mtime: SystemTime,
    /// The inode: a file renamed over this name is another file, whatever its size and mtime.
    ino: u64,
}

impl Entry {
    /// The name as text: UTF-8, or windows-1252 for names a legacy tool wrote (never fails).
    pub fn name_text(&self) -> String {
        let bytes = self.name.as_bytes();
        match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0.into_owned(),
        }
    }

    /// The name for logs and notes, with control characters escaped (no log injection).
    pub fn display_name(&self) -> String {
        escape_controls(&self.name_text())
    }
}

/// Escapes control characters (newlines, ANSI escapes, ...) so a name stays on its log line.
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// A path for logs, with control characters escaped.
pub fn shown(p: &Path) -> String {
    escape_controls(&p.to_string_lossy())
}

pub struct Scan {
    /// Settled files, oldest first (so successive versions of a story are applied in order).
    pub ready: Vec<Entry>,
    /// Time until the soonest unsettled file settles.
    pub waiting: Option<Duration>,
}

pub struct DropFolder {
    dir: PathBuf,
    done: PathBuf,
    failed: PathBuf,
    settle: Duration,
    max_size: u64,
    /// Unsettled files: (size, mtime) when first seen unchanged, and since when.
    seen: HashMap<OsString, (u64, SystemTime, Instant)>,
    /// Files that could not be moved away (a full disk, a permission), with the (size, mtime) seen
    /// and the last try: retried every `retry` while unchanged (no hot loop), at once when changed.
    stuck: HashMap<OsString, (u64, SystemTime, Instant)>,
    retry: Duration,
    /// Told once, after the first listing.
    listed: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// Entries already warned about (symlinks, directories, ...).
    warned: HashSet<OsString>,
    /// `done/.accepted`, open for appending, and whether this batch wrote to it.
    journal: Option<(File, bool)>,
}

/// In `done/`, one JSON line per file moved there, in the order they were accepted: the name it
/// has in done/ and the name it had in the drop folder. `siar rebuild` replays done/ in this
/// order (file times change with a restore or a copy; this order does not).
pub const JOURNAL: &str = ".accepted";

/// One line of the journal.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Accepted {
    pub file: String,
    pub name: String,
}

/// Temporary names producers write under before renaming, and editor droppings.
pub fn is_ignored(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.starts_with(b".")
        || [&b".tmp"[..], b".part", b".partial", b".crdownload", b".swp", b"~"].iter().any(|s| b.ends_with(s))
}

impl DropFolder {
    pub fn new(dir: &Path, cfg: &Ingest) -> DropFolder {
        DropFolder {
            dir: dir.to_path_buf(),
            done: dir.join(DONE),
            failed: dir.join(FAILED),
            settle: cfg.settle,
            max_size: cfg.max_size,
            seen: HashMap::new(),
            stuck: HashMap::new(),
            retry: cfg.rescan,
            listed: None,
            warned: HashSet::new(),
            journal: None,
        }
    }

    pub fn settle(&self) -> Duration {
        self.settle
    }

    pub fn done_dir(&self) -> &Path {
        &self.done
    }

    pub fn failed_dir(&self) -> &Path {
        &self.failed
    }

    /// Lists ready files. A file is ready when its mtime is at least `settle` old, or when its size
    /// and mtime have not changed for `settle` (for clocks that disagree).
    pub fn scan(&mut self, now: SystemTime) -> Scan {
        let scan = self.list(now);
        if let Some(listed) = self.listed.take() {
            listed.notify_one();
        }
        scan
    }

    fn list(&mut self, now: SystemTime) -> Scan {
        let mut ready = Vec::new();
        let mut waiting: Option<Duration> = None;
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                warn!("cannot list the drop folder {}: {e}; retrying at the next scan", self.dir.display());
                return Scan { ready, waiting: None };
            }
        };
        let mut present = HashSet::new();
        for dirent in entries.flatten() {
            let name = dirent.file_name();
            if is_ignored(&name) {
                continue;
            }
            let Ok(meta) = dirent.metadata() else { continue }; // vanished meanwhile
            if !meta.file_type().is_file() {
                let is_ours = meta.is_dir() && (name == DONE || name == FAILED);
                if !is_ours && self.warned.insert(name.clone()) {
                    let kind = if meta.file_type().is_symlink() {
                        "a symbolic link (never followed)"
                    } else {
                        "not a regular file"
                    };
                    warn!("drop folder: skipping {:?}: {kind}", self.dir.join(&name));
                }
                continue;
            }
            let (size, mtime) = (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            present.insert(name.clone());
            if let Some(&(s, m, tried)) = self.stuck.get(&name) {
                if (s, m) != (size, mtime) {
                    self.stuck.remove(&name);
                } else if tried.elapsed() < self.retry {
                    continue;
                }
            }
            let age = now.duration_since(mtime).unwrap_or(Duration::ZERO);
            let steady_since = match self.seen.get(&name) {
                Some(&(s, m, since)) if (s, m) == (size, mtime) => since,
                _ => {
                    let since = Instant::now();
                    self.seen.insert(name.clone(), (size, mtime, since));
                    since
                }
            };
            let remaining = self.settle.saturating_sub(age).min(self.settle.saturating_sub(steady_since.elapsed()));
            if remaining.is_zero() {
                ready.push(Entry { name, size, mtime, ino: meta.ino() });
            } else {
                waiting = Some(waiting.map_or(remaining, |w| w.min(remaining)));
            }
        }
        self.seen.retain(|n, _| present.contains(n));
        ready.sort_by(|a, b| (a.mtime, &a.name).cmp(&(b.mtime, &b.name)));
        Scan { ready, waiting }
    }

    /// Reads a ready file without following links. `Ok(None)`: it changed since the scan (still
    /// being written, or replaced), so it waits for the next pass.
    pub fn read(&mut self, entry: &Entry) -> Result<Option<(Vec<u8>, SystemTime)>, Reject> {
        let path = self.dir.join(&entry.name);
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path);
        let mut file = match file {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(Reject::new("unreadable", format!("cannot read the file: {e}; check its owner and mode")));
            }
            Err(e) => return Err(Reject::new("unreadable", format!("cannot open the file: {e}"))),
        };
        let before = file.metadata().map_err(|e| Reject::new("unreadable", format!("cannot stat the file: {e}")))?;
        if !before.is_file() {
            return Ok(None);
        }
        if (before.len(), before.modified().ok(), before.ino()) != (entry.size, Some(entry.mtime), entry.ino) {
            self.seen.remove(&entry.name);
            return Ok(None);
        }
        if before.len() > self.max_size {
            return Err(Reject::new(
                "too-large",
                format!(
                    "the file is {} bytes, over [ingest] max_size of {} bytes; split it or raise the limit",
                    before.len(),
                    self.max_size
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(before.len() as usize);
        (&mut file)
            .take(self.max_size + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Reject::new("unreadable", format!("reading the file failed: {e}")))?;
        let after = file.metadata().map_err(|e| Reject::new("unreadable", format!("cannot stat the file: {e}")))?;
        let unchanged = after.len() == bytes.len() as u64
            && after.modified().ok() == Some(entry.mtime)
            && after.ino() == before.ino();
        if !unchanged {
            self.seen.remove(&entry.name);
            return Ok(None);
        }
        Ok(Some((bytes, entry.mtime)))
    }

    /// Moves an ingested file to `done/` under its name, or a unique variant of it.
    /// `Ok(None)`: another file was renamed over the name meanwhile; it stays for the next pass.
    pub fn archive(&mut self, entry: &Entry) -> io::Result<Option<PathBuf>> {
        self.seen.remove(&entry.name);
        ensure_dir(&self.done)?;
        let moved = self.move_checked(entry, &self.done, |_| Ok(()))?;
        if let Some(to) = &moved {
            self.note_accepted(entry, to);
        }
        Ok(moved)
    }

    /// Appends the move to the journal. A journal that cannot be written loses only the order
    /// (rebuild then falls back to file times): logged, never a reason to stop ingesting.
    fn note_accepted(&mut self, entry: &Entry, to: &Path) {
        let line = Accepted {
            file: to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            name: entry.name_text(),
        };
        let written = (|| -> io::Result<()> {
            if self.journal.is_none() {
                let f = fs::OpenOptions::new().create(true).append(true).open(self.done.join(JOURNAL))?;
                self.journal = Some((f, false));
            }
            let Some((f, dirty)) = self.journal.as_mut() else { return Ok(()) };
            let mut bytes = serde_json::to_vec(&line).map_err(io::Error::other)?;
            bytes.push(b'\n');
            std::io::Write::write_all(f, &bytes)?;
            *dirty = true;
            Ok(())
        })();
        if let Err(e) = written {
            self.journal = None;
            warn!("cannot note {} in {}: {e}", line.file, self.done.join(JOURNAL).display());
        }
    }

    /// Moves a refused file to `failed/` and writes `<name>.error` beside it saying why.
    /// `Ok(None)` as for `archive`.
    pub fn reject(&mut self, entry: &Entry, reject: &Reject, hash: Option<[u8; 32]>) -> io::Result<Option<PathBuf>> {
        self.seen.remove(&entry.name);
        ensure_dir(&self.failed)?;
        let note = format!(
            "{}\ncode: {}\nfile: {}\nsize: {}\nblake3: {}\ntime: {}\nsiar: {}\n",
            reject.reason,
            reject.code,
            entry.display_name(),
            entry.size,
            hash.map(|h| blake3::Hash::from(h).to_hex().to_string()).unwrap_or_else(|| "-".into()),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            env!("CARGO_PKG_VERSION"),
        );
        // The note goes first: if we crash in between, the file is still in the drop folder and
        // is refused again; a note never exists for a file that was lost.
        self.move_checked(entry, &self.failed, |target| write_new(&note_path(target), note.as_bytes()))
    }

    /// Moves the very file that was read (same inode) into `dir`. A producer may rename a new
    /// version over the name at any moment: such a file is never acknowledged unread.
    fn move_checked(
        &self,
        entry: &Entry,
        dir: &Path,
        before: impl Fn(&Path) -> io::Result<()>,
    ) -> io::Result<Option<PathBuf>> {
        let src = self.dir.join(&entry.name);
        if fs::symlink_metadata(&src)?.ino() != entry.ino {
            return Ok(None);
        }
        let to = move_unique(&src, dir, &entry.name, before)?;
        if fs::symlink_metadata(&to).map(|m| m.ino()).ok() != Some(entry.ino) {
            // Replaced between the check and the rename: put the newer file back, unread.
            let _ = fs::remove_file(note_path(&to));
            move_unique(&to, &self.dir, &entry.name, |_| Ok(()))?;
            return Ok(None);
        }
        Ok(Some(to))
    }

    /// `notify` is told once the folder has been listed for the first time (listed or not: a
    /// folder that cannot be listed is logged and reported by /readyz).
    pub fn tell_when_listed(&mut self, notify: std::sync::Arc<tokio::sync::Notify>) {
        self.listed = Some(notify);
    }

    /// Whether moving this file out failed before (it is being retried).
    pub fn is_stuck(&self, entry: &Entry) -> bool {
        self.stuck.contains_key(&entry.name)
    }

    /// Records how moving `entry` away went. A failure starts an episode: the file is retried once
    /// per `rescan` while it stays as it is (at once would only spin). True when a retry failed
    /// again (neither logged nor counted again).
    pub fn note_move(&mut self, entry: &Entry, moved: bool) -> bool {
        let key = (entry.size, entry.mtime);
        if moved {
            if self.stuck.remove(&entry.name).is_some() {
                info!("{}: moving files out of the drop folder works again", entry.display_name());
            }
            return false;
        }
        let again = self.stuck.get(&entry.name).is_some_and(|&(s, m, _)| (s, m) == key);
        self.stuck.insert(entry.name.clone(), (key.0, key.1, Instant::now()));
        again
    }

    /// Makes the renames of a batch durable, and the journal's lines.
    pub fn sync(&mut self) {
        if let Some((f, dirty)) = self.journal.as_mut()
            && *dirty
        {
            *dirty = false;
            if let Err(e) = f.sync_data() {
                warn!("fsync of {} failed: {e}", self.done.join(JOURNAL).display());
            }
        }
        for dir in [&self.dir, &self.done, &self.failed] {
            if dir.exists()
                && let Err(e) = sync_dir(dir)
            {
                warn!("fsync of {} failed: {e}", dir.display());
            }
        }
    }
}

/// `done/` or `failed/`: created if missing; anything there but a real directory (a symbolic link
/// an uploader put in its place, say) is refused, never followed.
fn ensure_dir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if fs::symlink_metadata(dir)?.is_dir() {
                Ok(())
            } else {
                Err(io::Error::other(format!("{} is not a directory (a link?); siar never follows it", dir.display())))
            }
        }
        Err(e) => Err(e),
    }
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn note_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".error");
    PathBuf::from(name)
}

/// Longest name given to a moved file: with `.error` appended it still fits the usual 255 bytes.
const NAME_MAX: usize = 240;

/// `name`, then `stem~2.ext`, `stem~3.ext`, ...; a stem is shortened (at a character boundary)
/// when the name would not leave room for the `.error` note beside it.
fn candidate(name: &OsStr, n: u32) -> OsString {
    let b = name.as_bytes();
    let suffix = if n == 1 { String::new() } else { format!("~{n}") };
    if n == 1 && b.len() <= NAME_MAX {
        return name.to_owned();
    }
    let dot = b.iter().rposition(|&c| c == b'.').filter(|&i| i > 0 && b.len() - i <= 16);
    let (stem, ext) = dot.map_or((b, &b""[..]), |i| (&b[..i], &b[i..]));
    let mut keep = stem.len().min(NAME_MAX.saturating_sub(suffix.len() + ext.len()));
    if let Ok(text) = std::str::from_utf8(stem) {
        while !text.is_char_boundary(keep) {
            keep -= 1;
        }
    }
    let mut out = stem[..keep].to_vec();
    out.extend_from_slice(suffix.as_bytes());
    out.extend_from_slice(ext);
    OsStr::from_bytes(&out).to_owned()
}

/// Renames `src` into `dir` under the first free variant of `name`, never replacing anything.
/// `before` runs with the chosen target first (to write a note); its failure aborts the move.
fn move_unique(src: &Path, dir: &Path, name: &OsStr, before: impl Fn(&Path) -> io::Result<()>) -> io::Result<PathBuf> {
    for n in 1..10_000 {
        let target = dir.join(candidate(name, n));
        if target.exists() || note_path(&target).exists() {
            continue;
        }
        before(&target)?;
        match rename_noreplace(src, &target) {
            Ok(()) => return Ok(target),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!("no free name for {} in {}", name.to_string_lossy(), dir.display())))
}

/// rename(2) that fails with AlreadyExists instead of replacing the target.
fn rename_noreplace(src: &Path, dst: &Path) -> io::Result<()> {
    use std::ffi::CString;
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::other("NUL in path"));
    let (s, d) = (c(src)?, c(dst)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe { libc::renameat2(libc::AT_FDCWD, s.as_ptr(), libc::AT_FDCWD, d.as_ptr(), libc::RENAME_NOREPLACE) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EINVAL) || err.raw_os_error() == Some(libc::ENOSYS) {
        // The file system has no RENAME_NOREPLACE: check, then rename (we are the only mover).
        if dst.exists() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        return fs::rename(src, dst);
    }
    Err(err)
}

/// Writes a new file atomically (temp + fsync + rename without replacing).
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path.parent().unwrap_or(Path::new(".")));
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o644).open(&tmp)?;
    let result = f.write_all(bytes).and_then(|()| f.sync_all()).and_then(|()| rename_noreplace(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A fresh hidden temp name in `dir` (a dotfile ending in `.tmp`, which the drop folder ignores).
/// Short on purpose: the target's own name may already be near the 255-byte limit.
fn temp_path(dir: &Path) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    dir.join(format!(".siar-{}-{n}.tmp", std::process::id()))
}

/// Copies `src` into the drop folder atomically: a hidden temp name, fsync, then a rename that
/// never replaces a waiting file. Keeps the source's mtime (it is the article's date when the
/// file names none). Returns the final path.
pub fn hand_in(src: &Path, drop_dir: &Path) -> io::Result<PathBuf> {
    let name = src.file_name().ok_or_else(|| io::Error::other("not a file name"))?;
    if is_ignored(name) {
        return Err(io::Error::other(
            "the drop folder ignores this name (a dotfile or a temporary suffix such as .tmp, .part, ~); rename the file",
        ));
    }
    let bytes = fs::read(src)?;
    let mtime = fs::metadata(src)?.modified()?;
    let tmp = temp_path(drop_dir);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        // The daemon may run as another user of the drop folder's group: whatever the caller's
        // umask, the group can read what is handed in.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o640))?;
        f.write_all(&bytes)?;
        f.set_modified(mtime)?;
        f.sync_all()?;
        drop(f);
        let target = move_unique(&tmp, drop_dir, name, |_| Ok(()))?;
        sync_dir(drop_dir)?;
        Ok(target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Starts an inotify watcher that wakes the scan; None (with a warning) when it cannot.
pub fn watch(dir: &Path, wake: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(_) => wake.notify_one(),
        Err(e) => {
            debug!("drop folder watcher: {e}; the periodic rescan covers it");
            wake.notify_one();
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            warn!("cannot start the drop folder watcher: {e}; relying on the periodic rescan");
            return None;
        }
    };
    if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
        warn!("cannot watch {}: {e}; relying on the periodic rescan", dir.display());
        return None;
    }
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_names() {
        for n in [".x", "a.tmp", "a.part", "a~", ".#a", "a.swp"] {
            assert!(is_ignored(OsStr::new(n)), "{n}");
        }
        for n in ["a.txt", "a.md", "tmp.txt"] {
            assert!(!is_ignored(OsStr::new(n)), "{n}");
        }
    }

    #[test]
    fn unique_names() {
        assert_eq!(candidate(OsStr::new("a.txt"), 1), "a.txt");
        assert_eq!(candidate(OsStr::new("a.txt"), 2), "a~2.txt");
        assert_eq!(candidate(OsStr::new("noext"), 3), "noext~3");
        assert_eq!(candidate(OsStr::new(".hidden"), 2), ".hidden~2");
        let long = format!("{}.txt", "é".repeat(200));
        for n in [1, 2, 1000] {
            let c = candidate(OsStr::new(&long), n);
            assert!(c.len() <= NAME_MAX && c.to_str().is_some_and(|s| s.ends_with(".txt")), "{c:?}");
        }
    }

    #[test]
    fn a_file_renamed_over_the_one_read_is_not_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = crate::config::Ingest {
            max_size: 1 << 20,
            settle: Duration::ZERO,
            rescan: Duration::from_secs(60),
            article_link: "{site}{slug}".into(),
            watch: false,
        };
        let mut folder = DropFolder::new(dir.path(), &cfg);
        fs::write(dir.path().join("a.txt"), b"old version").expect("write");
        let scan = folder.scan(SystemTime::now() + Duration::from_secs(1));
        let entry = scan.ready.into_iter().next().expect("ready");
        assert!(folder.read(&entry).expect("read").is_some());
        // The producer renames a new version over it before siar acknowledges the old one.
        fs::write(dir.path().join(".new"), b"new version").expect("write");
        fs::rename(dir.path().join(".new"), dir.path().join("a.txt")).expect("rename");
        assert_eq!(folder.archive(&entry).expect("archive"), None);
        assert_eq!(fs::read(dir.path().join("a.txt")).expect("read"), b"new version", "left for the next pass");
        assert!(!dir.path().join("done/a.txt").exists());
    }

    #[test]
    fn moves_never_replace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, out) = (dir.path().join("a.txt"), dir.path().join("out"));
        fs::create_dir(&out).expect("mkdir");
        fs::write(out.join("a.txt"), b"old").expect("write");
        fs::write(&a, b"new").expect("write");
        let to = move_unique(&a, &out, OsStr::new("a.txt"), |_| Ok(())).expect("move");
        assert_eq!(to, out.join("a~2.txt"));
        assert_eq!(fs::read(out.join("a.txt")).expect("read"), b"old");
        assert_eq!(fs::read(to).expect("read"), b"new");
    }
}
