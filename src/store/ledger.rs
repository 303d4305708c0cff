//! The ledger: a small file beside sled's own (`<state>/siar.ledger`) recording how many articles
//! the store is known to have held, and a stamp of sled's files as the last clean close left them.
//! It lives outside sled so that a damaged sled cannot damage the record of what it should hold;
//! it is written atomically (temp file, fsync, rename, fsync of the directory).

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub const FILE: &str = "siar.ledger";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub format: u32,
    /// Articles ever counted in: those stored plus those retention removed, at the last record.
    /// Never decreases; a store that opens with fewer (stored + removed) has lost articles.
    pub held: u64,
    /// Of those, removed by retention (as the store counts them).
    pub removed: u64,
    /// sled's files as the last clean close left them; equal stamps at the next open mean the
    /// bytes are as siar left them, so they need no copy before sled opens them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean: Option<Vec<Stamp>>,
    /// The siar that wrote this record.
    pub siar: String,
}

/// One file of sled's: its name under the state directory and what changes when it is written
/// (ctime cannot be set back by a program).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    pub name: String,
    pub len: u64,
    pub ino: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Ledger {
    pub fn new(held: u64, removed: u64) -> Ledger {
        Ledger { format: FORMAT, held, removed, clean: None, siar: env!("CARGO_PKG_VERSION").to_string() }
    }
}

/// The ledger, `None` when the store has none yet (new, or written by a siar before ledgers).
pub fn read(dir: &Path) -> std::io::Result<Option<Ledger>> {
    let bytes = match std::fs::read(dir.join(FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let ledger: Ledger = serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{FILE} is unreadable: {e}")))?;
    if ledger.format != FORMAT {
        let msg = format!("{FILE} has format {}, this siar knows {FORMAT}", ledger.format);
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, msg));
    }
    Ok(Some(ledger))
}

pub fn write(dir: &Path, ledger: &Ledger) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(ledger).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Stamps of every regular file sled keeps under `dir` (not the ledger, nor the control socket),
/// sorted by name.
pub fn stamps(dir: &Path) -> std::io::Result<Vec<Stamp>> {
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<Stamp>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if name == FILE || name.starts_with('.') {
            continue;
        }
        let meta = entry.metadata()?;
        if meta.is_dir() {
            walk(&entry.path(), &format!("{name}/"), out)?;
        } else if meta.is_file() {
            let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
            out.push(Stamp {
                name,
                len: meta.len(),
                ino: meta.ino(),
                mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
                ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            });
        }
    }
    Ok(())
}

/// Whether sled has files in `dir` (a store, possibly damaged, rather than nothing yet).
pub fn has_store(dir: &Path) -> bool {
    ["db", "conf"].iter().any(|f| dir.join(f).symlink_metadata().is_ok())
        || std::fs::read_dir(dir)
            .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("snap."))))
}

/// Holds sled's lock file (`db`) with a non-blocking flock, as sled itself does, or says it is busy.
pub struct Lock(#[allow(dead_code)] std::fs::File);

pub fn try_lock(dir: &Path) -> std::io::Result<Option<Lock>> {
    use std::os::fd::AsRawFd;
    let f = match std::fs::File::open(dir.join("db")) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(Lock(std::fs::File::open(dir)?))),
        Err(e) => return Err(e),
    };
    // SAFETY: a valid open descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(Some(Lock(f)))
    } else {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok(None) } else { Err(e) }
    }
}

/// Copies the store directory (sled's files, not the socket) to `to`, file by file, fsynced.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let target = to.join(entry.file_name());
        if meta.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if meta.is_file() {
            std::fs::copy(entry.path(), &target)?;
            std::fs::File::open(&target)?.sync_all()?;
        }
    }
    std::fs::File::open(to)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_stamps_see_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("read"), None);
        std::fs::write(dir.path().join("db"), b"abc").expect("write");
        let before = stamps(dir.path()).expect("stamps");
        let mut l = Ledger::new(30, 2);
        l.clean = Some(before.clone());
        write(dir.path(), &l).expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(l));
        assert_eq!(stamps(dir.path()).expect("stamps"), before, "the ledger is not stamped");
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(dir.path().join("db"), b"abd").expect("write");
        assert_ne!(stamps(dir.path()).expect("stamps"), before);
        std::fs::write(dir.path().join(FILE), b"{garbage").expect("write");
        assert!(read(dir.path()).is_err());
    }
}
