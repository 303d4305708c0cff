//! Atomic file replacement: temp file beside the target, fsync, rename, fsync the directory.
//! A reader sees the old file or the new one, never a mix; a failed write leaves the old one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Temp files are `.<name>.siar-tmp`: hidden, and recognisable as ours for clean-up at start.
const TMP_SUFFIX: &str = ".siar-tmp";

/// Writes `bytes` to `path` unless it already holds exactly them. Returns whether it wrote.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| io::Error::other("no file name"))?.to_string_lossy();
    let tmp = dir.join(format!(".{name}{TMP_SUFFIX}"));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| true)
}

/// gzip at the best level (files served as they are, compressed once).
pub fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use flate2::write::GzEncoder;
    let mut z = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::best());
    z.write_all(bytes).ok()?;
    z.finish().ok()
}

/// Removes temp files a crash left in the output directory. Returns how many.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with('.') && n.ends_with(TMP_SUFFIX)
        })
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn unchanged_bytes_are_not_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("all.rss");
        assert!(write_if_changed(&p, b"one").expect("write"));
        let ino = fs::metadata(&p).expect("meta").ino();
        assert!(!write_if_changed(&p, b"one").expect("write"));
        assert_eq!(fs::metadata(&p).expect("meta").ino(), ino);
        assert!(write_if_changed(&p, b"two").expect("write"));
        assert_eq!(fs::read(&p).expect("read"), b"two");
        fs::write(dir.path().join(".all.atom.siar-tmp"), b"half").expect("write");
        assert_eq!(remove_stale_temps(dir.path()), 1);
    }
}
