//! The output directory's files as siar wrote them: a feed that left the config (or became keyed)
//! is taken out of it, and a feed file read back says how many items it holds (the open check's
//! evidence that a store held articles).

use std::fs;

use tracing::{error, info, warn};

use super::{FORMATS, GENERATOR};
use crate::config::{Access, Config};
use crate::store::Store;

/// A public feed that left the config (or became keyed) must not stay readable through a static
/// server: its files and archive pages are taken out of the output directory. Only names this
/// store wrote there are touched, and only files of the shapes siar writes.
pub(super) fn retire_removed_feeds(cfg: &Config, store: &Store) -> Result<(), crate::store::Error> {
    let public: Vec<String> = cfg.feeds.iter().filter(|f| f.access == Access::Public).map(|f| f.name.clone()).collect();
    let before = store.feeds_on_disk(&cfg.paths.output)?;
    if before == public {
        return Ok(());
    }
    let mut on_disk = public.clone();
    // Names read back from the store are checked again before they become paths.
    for gone in before.iter().filter(|n| !public.contains(n) && crate::config::is_feed_name(n)) {
        let (removed, left) = remove_feed_files(&cfg.paths.output, gone);
        if removed > 0 {
            info!("feed {gone} is no longer public: removed its {removed} files from {}", cfg.paths.output.display());
        }
        if left > 0 {
            // Tried again at the next publish (a read-only output, a permission).
            on_disk.push(gone.clone());
        }
    }
    if on_disk == before {
        return Ok(());
    }
    store.set_feeds_on_disk(&cfg.paths.output, &on_disk)
}

/// Removes `<output>/<name>.{rss,atom,json}` and the archive pages `<output>/<name>/archive/<n>.<ext>[.gz]`,
/// then the directories if empty; never follows a link. Returns how many files went and how many
/// could not be removed.
fn remove_feed_files(output: &std::path::Path, name: &str) -> (usize, usize) {
    let (mut removed, mut left) = (0, 0);
    let mut remove = |p: &std::path::Path| match fs::remove_file(p) {
        Ok(()) => removed += 1,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            left += 1;
            warn!("cannot remove {} of a feed no longer public: {e}; retried at the next publish", p.display())
        }
    };
    for ext in FORMATS {
        remove(&output.join(format!("{name}.{ext}")));
    }
    let dir = output.join(name);
    let archive = dir.join("archive");
    let real_dir = |p: &std::path::Path| p.symlink_metadata().is_ok_and(|m| m.is_dir());
    if real_dir(&dir) && real_dir(&archive) {
        let is_page = |file: &str| {
            let stem = file.strip_suffix(".gz").unwrap_or(file);
            stem.split_once('.').is_some_and(|(n, ext)| {
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && FORMATS.contains(&ext)
            })
        };
        for entry in fs::read_dir(&archive).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) && entry.file_name().to_str().is_some_and(is_page) {
                remove(&entry.path());
            }
        }
        let _ = fs::remove_dir(&archive);
        let _ = fs::remove_dir(&dir);
    }
    (removed, left)
}

/// A feed that became keyed must not stay readable through a static server's copy.
pub(super) fn remove_public_copies(name: &str, paths: &[std::path::PathBuf]) {
    for p in paths {
        match fs::remove_file(p) {
            Ok(()) => warn!("feed {name} is keyed now: removed its public copy {}", p.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => error!("feed {name} is keyed, but its public copy {} cannot be removed: {e}", p.display()),
        }
    }
}

/// The ids of a JSON Feed document's items, as published (`None`: no such file, or not JSON).
pub(super) fn ids_in_json_feed(path: &std::path::Path) -> Option<Vec<String>> {
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    let items = doc["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    Some(items.iter().filter_map(|i| i["id"].as_str().map(String::from)).collect())
}

/// How many items a feed file that siar wrote holds (`None`: not a feed file of siar's). Used at
/// start to tell a lost store from a new one.
pub fn items_in_siar_feed(path: &std::path::Path) -> Option<usize> {
    use std::io::Read;
    let ext = path.extension()?.to_str()?;
    if !FORMATS.contains(&ext) {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path).ok()?.take(64 << 20).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let count = |tag: &str| text.matches(&format!("<{tag}>")).count() + text.matches(&format!("<{tag} ")).count();
    // The RSS and Atom documents name siar as their generator (JSON Feed has no such field;
    // siar writes all three, so those two suffice).
    let generator = GENERATOR.split(' ').next().unwrap_or("siar");
    let named =
        |open: &str| text.contains(&format!("{open}{generator} ")) || text.contains(&format!("{open}{generator}<"));
    match ext {
        "rss" if named("<generator>") => Some(count("item")),
        "atom" if text.contains("<generator") && text.contains(&format!(">{generator}<")) => Some(count("entry")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_removal_that_fails_is_tried_again_and_only_recorded_feeds_are_touched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (out, state) = (dir.path().join("feeds"), dir.path().join("state"));
        fs::create_dir_all(&out).expect("mkdir");
        let store = Store::open(&state).expect("store");
        let cfg = |feeds: &[&str]| {
            let tables: String = feeds.iter().map(|f| format!("[[feed]]\nname = \"{f}\"\n")).collect();
            let text =
                format!("[site]\ntitle = \"T\"\nlink = \"https://x.org/\"\n[paths]\noutput = \"feeds\"\n{tables}");
            Config::parse(&text, Path::new("t.toml"), dir.path()).expect("config")
        };
        // Never recorded as written by siar: left alone.
        fs::write(out.join("asing.rss"), "x").expect("write");
        retire_removed_feeds(&cfg(&["lama", "baru"]), &store).expect("record");
        fs::write(out.join("lama.atom"), "x").expect("write");
        // lama.rss cannot be removed (a directory in its place): lama stays on the list.
        fs::create_dir_all(out.join("lama.rss/x")).expect("mkdir");
        retire_removed_feeds(&cfg(&["baru"]), &store).expect("retire");
        assert!(!out.join("lama.atom").exists());
        assert_eq!(store.feeds_on_disk(&out).expect("read"), ["baru", "lama"]);
        fs::remove_dir_all(out.join("lama.rss")).expect("rm");
        fs::write(out.join("lama.json"), "x").expect("write");
        retire_removed_feeds(&cfg(&["baru"]), &store).expect("retire again");
        assert!(!out.join("lama.json").exists(), "the next publish tries again");
        assert_eq!(store.feeds_on_disk(&out).expect("read"), ["baru"]);
        assert!(out.join("asing.rss").exists());
    }

    #[test]
    fn a_removed_feed_loses_its_files_and_archive_pages_and_nothing_else() {
        let out = tempfile::tempdir().expect("tempdir");
        let o = out.path();
        fs::create_dir_all(o.join("lama/archive")).expect("mkdir");
        for f in ["lama.rss", "lama.atom", "lama.json", "lama.txt", "lain.rss"] {
            fs::write(o.join(f), "x").expect("write");
        }
        for f in ["1.rss", "1.rss.gz", "2.atom", "12.json.gz", "catatan.txt", "1.xml"] {
            fs::write(o.join("lama/archive").join(f), "x").expect("write");
        }
        std::os::unix::fs::symlink(o.join("lain.rss"), o.join("lama/archive/3.rss")).expect("symlink");
        assert_eq!(remove_feed_files(o, "lama"), (7, 0));
        let mut left: Vec<String> = fs::read_dir(o.join("lama/archive"))
            .expect("archive stays: it holds other files")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["1.xml", "3.rss", "catatan.txt"]);
        assert!(o.join("lama.txt").exists() && o.join("lain.rss").exists());

        fs::create_dir_all(o.join("kosong/archive")).expect("mkdir");
        fs::write(o.join("kosong/archive/1.rss"), "x").expect("write");
        assert_eq!(remove_feed_files(o, "kosong"), (1, 0));
        assert!(!o.join("kosong").exists(), "empty directories go too");
    }
}
