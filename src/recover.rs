//! Opening the store for the daemon and the commands, refusing a lost one (an empty store beside
//! ingested files or published feeds), and the store's recovery commands: `verify`, `export`,
//! `import`, `rebuild`. They meet the store through its own API (`store::verify`,
//! `store::export`), the daemon's store through the control socket, and the drop folder's `done/`
//! through ingest's `build`, as ingest would.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::exit::{EX_CANTCREAT, EX_DATAERR, EX_NOINPUT, EX_SOFTWARE, EX_TEMPFAIL, Failure};
use crate::store::{self, Outcome, Put, Store, ledger};
use crate::{control, ingest, publish};

/// Opens the store, saying clearly when another process holds it, and refusing (65) an empty
/// store beside evidence that it held articles: files in `<drop>/done/`, or non-empty feeds siar
/// wrote in the output directory. A missing store is not created then.
pub fn open_store(cfg: &Config) -> Result<Store, Failure> {
    let state = &cfg.paths.state;
    match open_or_busy(cfg)? {
        Some(store) => Ok(store),
        None => Err(Failure::new(
            EX_TEMPFAIL,
            anyhow::anyhow!(
                "the store {} is in use by another process (a running siar?); stop the other siar first \
                 (only one daemon may use a state directory)",
                state.display()
            ),
        )),
    }
}

/// `open_store`, with `None` when another process (the daemon) holds the store: a reading
/// command then asks the daemon instead.
pub fn open_or_busy(cfg: &Config) -> Result<Option<Store>, Failure> {
    let state = &cfg.paths.state;
    refuse_if_lost(cfg)?;
    let store = match Store::open(state) {
        Ok(s) => s,
        Err(crate::store::Error::Locked { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let c = store.counted();
    // A store rebuilt or imported empty (an aggregator's sources are polled again) is no loss.
    if c.articles == 0
        && c.removed == 0
        && !store.rebuilt()?
        && let Some(evidence) = evidence_of_articles(cfg)
    {
        return Err(lost_store(cfg, &format!("it holds no articles, but {evidence}")));
    }
    Ok(Some(store))
}

/// Refuses (65) when there is no store but evidence that there was one.
pub fn refuse_if_lost(cfg: &Config) -> Result<(), Failure> {
    if !crate::store::ledger::has_store(&cfg.paths.state)
        && let Some(evidence) = evidence_of_articles(cfg)
    {
        return Err(lost_store(cfg, &format!("there is no store there, but {evidence}")));
    }
    Ok(())
}

fn lost_store(cfg: &Config, what: &str) -> Failure {
    Failure::new(
        EX_DATAERR,
        anyhow::anyhow!(
            "the store {} is damaged or lost: {what}. Nothing was published from it. Next: `siar verify` \
             says what is wrong; `siar rebuild` builds the store again from {} (and `--from` an export, \
             if you have one), keeping the articles' ids (README: Recovering a damaged store)",
            cfg.paths.state.display(),
            cfg.paths.drop.join(ingest::dropfolder::DONE).display()
        ),
    )
}

/// What shows that the store once held articles: files acknowledged into `<drop>/done/`, or a
/// feed file of siar's with items in the output directory.
pub fn evidence_of_articles(cfg: &Config) -> Option<String> {
    let done = cfg.paths.drop.join(ingest::dropfolder::DONE);
    let ingested = std::fs::read_dir(&done)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()) && !ingest::dropfolder::is_ignored(&e.file_name()))
                .count()
        })
        .unwrap_or(0);
    if ingested > 0 {
        return Some(format!("{} holds {ingested} ingested files", done.display()));
    }
    let dir = std::fs::read_dir(&cfg.paths.output).ok()?;
    let mut names: Vec<_> = dir.flatten().map(|e| e.path()).collect();
    names.sort();
    names.into_iter().find_map(|p| {
        let items = publish::items_in_siar_feed(&p)?;
        (items > 0).then(|| format!("{} holds {items} items", p.display()))
    })
}

fn fail(code: i32, msg: String) -> Failure {
    Failure::new(code, anyhow::anyhow!(msg))
}

fn busy(state: &Path, e: String) -> Failure {
    fail(EX_TEMPFAIL, format!("the store {} is held by a running siar, and {e}", state.display()))
}

/// `siar verify`: every record read and checked; 0 when clean, 65 with the problems listed.
pub fn verify(cfg: &Config) -> Result<(), Failure> {
    let state = &cfg.paths.state;
    let mut report = if !ledger::has_store(state) {
        let mut r = store::verify::Report::default();
        if let Some(evidence) = evidence_of_articles(cfg) {
            r.problems.push(format!("there is no store at {}, but {evidence}", state.display()));
        } else {
            println!("no store at {} yet: nothing to verify", state.display());
            return Ok(());
        }
        r
    } else {
        match Store::open_copy(state) {
            Ok(copy) => copy.store().verify(copy.held),
            Err(store::Error::Locked { .. }) => control::request_verify(state).map_err(|e| busy(state, e))?,
            Err(e) => store::verify::Report { problems: vec![e.to_string()], ..Default::default() },
        }
    };
    if report.articles == 0
        && report.removed == 0
        && report.problems.is_empty()
        && let Some(evidence) = evidence_of_articles(cfg)
    {
        report.problems.push(format!("the store holds no articles, but {evidence}"));
    }
    let r = &report;
    println!(
        "store {}: {} articles, {} earlier versions, {} removed by retention, {} sources, {} archive pages{}",
        state.display(),
        r.articles,
        r.versions,
        r.removed,
        r.sources,
        r.archive_pages,
        r.held.map_or(String::new(), |h| format!("; its ledger says it held {h}"))
    );
    if r.is_clean() {
        println!("clean: every record reads and the indexes agree");
        return Ok(());
    }
    for p in &r.problems {
        println!("problem: {p}");
    }
    Err(fail(
        EX_DATAERR,
        format!(
            "the store {} has {} problems (listed above); `siar rebuild` moves it aside and builds it again \
             (README: Recovering a damaged store)",
            state.display(),
            r.problems.len()
        ),
    ))
}

/// `siar export [--output FILE]`: the whole store as JSON Lines, to stdout or (atomically) a file.
pub fn export(cfg: &Config, output: Option<&Path>) -> Result<(), Failure> {
    let state = &cfg.paths.state;
    if !ledger::has_store(state) {
        refuse_if_lost(cfg)?;
        return Err(fail(EX_NOINPUT, format!("no store at {} yet: nothing to export", state.display())));
    }
    let target = output.map(|p| (p.to_path_buf(), temp_beside(p)));
    let mut out: Box<dyn Write> = match &target {
        Some((path, tmp)) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(tmp)
                .map_err(|e| fail(EX_CANTCREAT, format!("cannot write {}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let result = match Store::open_copy(state) {
        // A damaged store is not exported: a backup of what is left would replace a good one.
        Ok(copy) => copy.check(state).and_then(|()| copy.store().export(&mut out)).map_err(Failure::from),
        Err(store::Error::Locked { .. }) => control::request_export(state, &mut out).map_err(|e| busy(state, e)),
        Err(e) => Err(e.into()),
    };
    let flushed = out.flush();
    drop(out);
    match (result, target) {
        (Err(f), Some((_, tmp))) => {
            let _ = std::fs::remove_file(tmp);
            Err(f)
        }
        (Err(f), None) => Err(f),
        (Ok(n), Some((path, tmp))) => {
            let done = flushed
                .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
                .and_then(|()| std::fs::rename(&tmp, &path));
            if let Err(e) = done {
                let _ = std::fs::remove_file(&tmp);
                return Err(fail(EX_CANTCREAT, format!("cannot write {}: {e}", path.display())));
            }
            eprintln!("exported {n} articles from {} to {}", state.display(), path.display());
            Ok(())
        }
        (Ok(_), None) => flushed.map_err(|e| fail(EX_SOFTWARE, format!("cannot write the export: {e}"))),
    }
}

fn temp_beside(p: &Path) -> PathBuf {
    let name = p.file_name().map_or("export".into(), |n| n.to_string_lossy().into_owned());
    p.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// `siar import FILE`: an export into an empty or absent store.
pub fn import(cfg: &Config, file: &Path) -> Result<(), Failure> {
    let input = open_input(file)?;
    let store = open_empty(cfg, "import")?;
    let got = store.import(input, &file.display().to_string()).map_err(|e| {
        fail(
            EX_DATAERR,
            format!("{e}; the store {} may hold part of it: remove it, then import again", cfg.paths.state.display()),
        )
    })?;
    store.set_rebuilt(true)?;
    store.close()?;
    println!(
        "imported {} articles ({} earlier versions), {} sources and {} archive pages from {} into {}",
        got.articles,
        got.versions,
        got.sources,
        got.pages,
        file.display(),
        cfg.paths.state.display()
    );
    Ok(())
}

/// An export to read.
fn open_input(file: &Path) -> Result<std::io::BufReader<std::fs::File>, Failure> {
    std::fs::File::open(file)
        .map(std::io::BufReader::new)
        .map_err(|e| fail(EX_NOINPUT, format!("cannot read {}: {e}", file.display())))
}

/// Opens the store for `import`/`rebuild`, which need it empty or absent.
fn open_empty(cfg: &Config, what: &str) -> Result<Store, Failure> {
    let state = &cfg.paths.state;
    std::fs::create_dir_all(state)
        .map_err(|e| fail(EX_CANTCREAT, format!("[paths] state: cannot create {}: {e}", state.display())))?;
    let store = match Store::open(state) {
        Ok(s) => s,
        Err(store::Error::Locked { .. }) => {
            return Err(fail(
                EX_TEMPFAIL,
                format!("the store {} is held by a running siar: stop it first (systemctl stop siar)", state.display()),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let c = store.counted();
    if c.articles > 0 || c.removed > 0 {
        return Err(fail(
            EX_DATAERR,
            format!(
                "the store {} holds {} articles: {what} needs an empty or absent store; move it aside first, \
                 or use `siar rebuild --from FILE`, which does",
                state.display(),
                c.articles
            ),
        ));
    }
    Ok(store)
}

/// A file of `done/`, with what rebuild needs to know of it.
struct Done {
    path: PathBuf,
    /// The name it had in the drop folder (before a `~N` variant was given in done/).
    name: String,
    mtime: DateTime<Utc>,
    /// When it was moved into done/ (its ctime): the order files were accepted in.
    accepted: DateTime<Utc>,
}

fn time(s: i64, ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, ns.clamp(0, 999_999_999) as u32).unwrap_or_default()
}

/// A name given in done/ split into the drop-folder name and its `~N` (1 for the name itself):
/// `a~2.txt` was the second `a.txt`.
fn split_variant(done_name: &str) -> (String, u32) {
    let (stem, ext) = match done_name.rfind('.') {
        Some(i) if i > 0 && done_name.len() - i <= 16 => done_name.split_at(i),
        _ => (done_name, ""),
    };
    match stem.rsplit_once('~').and_then(|(s, n)| Some((s, n.parse::<u32>().ok()?))) {
        Some((s, n)) if !s.is_empty() && n >= 2 => (format!("{s}{ext}"), n),
        _ => (done_name.to_string(), 1),
    }
}

/// The drop-folder name of a file in done/.
pub fn drop_name(done_name: &str) -> String {
    split_variant(done_name).0
}

/// The `~N` of a name given in done/, to order versions of one name.
fn variant(done_name: &str) -> u32 {
    split_variant(done_name).1
}

/// done/'s files in the order they were accepted: the journal's order (`done/.accepted`), after
/// the files accepted before siar kept one (by the time they were moved there, then name and
/// `~N`).
fn done_files(dir: &Path) -> std::io::Result<Vec<Done>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut journal: std::collections::HashMap<String, (usize, String)> = std::collections::HashMap::new();
    if let Ok(text) = std::fs::read_to_string(dir.join(ingest::dropfolder::JOURNAL)) {
        for (i, line) in text.lines().enumerate() {
            if let Ok(a) = serde_json::from_str::<ingest::dropfolder::Accepted>(line) {
                journal.insert(a.file, (i, a.name));
            }
        }
    }
    let mut keyed = Vec::new();
    for e in entries {
        let e = e?;
        let meta = e.path().symlink_metadata()?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !meta.is_file() || ingest::dropfolder::is_ignored(&e.file_name()) {
            continue;
        }
        let accepted = time(meta.ctime(), meta.ctime_nsec());
        let (position, drop) = match journal.get(&name) {
            Some((i, n)) => (Some(*i), n.clone()),
            None => (None, drop_name(&name)),
        };
        let order = (position.is_some(), position.unwrap_or(0), accepted, drop.clone(), variant(&name));
        keyed
            .push((order, Done { path: e.path(), name: drop, mtime: time(meta.mtime(), meta.mtime_nsec()), accepted }));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(keyed.into_iter().map(|(_, d)| d).collect())
}

/// Moves the store directory to `aside`; a store on its own mount (or another file system than
/// its parent) cannot be renamed: its files are copied there, then removed from the store.
fn move_aside(state: &Path, aside: &Path) -> std::io::Result<()> {
    match std::fs::rename(state, aside) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EXDEV)) => {
            ledger::copy_dir(state, aside)?;
            for entry in std::fs::read_dir(state)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(entry.path())?;
                } else {
                    std::fs::remove_file(entry.path())?;
                }
            }
            Ok(())
        }
        other => other,
    }
}

/// `siar rebuild [--from EXPORT]`: the store moved aside, a new one from the export and done/.
pub fn rebuild(cfg: &Config, from: Option<&Path>) -> Result<(), Failure> {
    let state = &cfg.paths.state;
    // Read before the store is moved aside: a missing export changes nothing.
    let input = from.map(open_input).transpose()?;
    let done_dir = cfg.paths.drop.join(ingest::dropfolder::DONE);
    let files =
        done_files(&done_dir).map_err(|e| fail(EX_NOINPUT, format!("cannot list {}: {e}", done_dir.display())))?;
    let mut moved = None;
    if state.exists() {
        let lock =
            ledger::try_lock(state).map_err(|e| fail(EX_TEMPFAIL, format!("cannot lock {}: {e}", state.display())))?;
        let Some(lock) = lock else {
            return Err(fail(
                EX_TEMPFAIL,
                format!(
                    "the store {} is held by a running siar: stop it first (systemctl stop siar); nothing was changed",
                    state.display()
                ),
            ));
        };
        let aside = store::sibling(state, "damaged");
        move_aside(state, &aside).map_err(|e| {
            fail(EX_CANTCREAT, format!("cannot move the store {} aside to {}: {e}", state.display(), aside.display()))
        })?;
        drop(lock);
        println!(
            "moved the store {} aside to {} (kept: remove it once you are satisfied)",
            state.display(),
            aside.display()
        );
        moved = Some(aside);
    }
    let store = open_empty(cfg, "rebuild")?;
    if let (Some(f), Some(input)) = (from, input) {
        let got = store.import(input, &f.display().to_string()).map_err(|e| {
            fail(
                EX_DATAERR,
                format!(
                    "{e}; the old store is at {}",
                    moved.as_ref().map_or("(none)".into(), |m| m.display().to_string())
                ),
            )
        })?;
        println!(
            "read {}: {} articles ({} earlier versions), {} sources, {} archive pages",
            f.display(),
            got.articles,
            got.versions,
            got.sources,
            got.pages
        );
    }
    let (mut new, mut versions, mut known, mut unreadable) = (0, 0, 0, Vec::new());
    for d in &files {
        let bytes = match std::fs::read(&d.path) {
            Ok(b) => b,
            Err(e) => {
                unreadable.push(format!("{}: {e}", d.path.display()));
                continue;
            }
        };
        let incoming = match ingest::build(cfg, &d.name, &bytes, d.mtime, d.accepted) {
            Ok(i) => i,
            Err(r) => {
                unreadable.push(format!("{}: {} [{}]", d.path.display(), r.reason, r.code));
                continue;
            }
        };
        let put = Put::new(incoming.article, incoming.explicit_date, Some(incoming.file_hash), true);
        match store.put_many(&[put], d.accepted)?.pop() {
            Some(Outcome::Inserted(_)) => new += 1,
            Some(Outcome::Updated(_)) => versions += 1,
            _ => known += 1,
        }
    }
    store.set_rebuilt(true)?;
    store.close()?;
    println!(
        "read {} files from {}: {new} articles, {versions} new versions, {known} already stored (same bytes or content)",
        files.len(),
        done_dir.display()
    );
    for u in &unreadable {
        println!("could not read: {u}");
    }
    println!(
        "rebuilt {}; sources are polled again at the next run, and the next publish writes the feeds",
        state.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn done_names_lose_their_variant() {
        assert_eq!(super::drop_name("a~2.txt"), "a.txt");
        assert_eq!(super::drop_name("a~13.md"), "a.md");
        assert_eq!(super::drop_name("a.txt"), "a.txt");
        assert_eq!(super::drop_name("a~1.txt"), "a~1.txt");
        assert_eq!(super::drop_name("a~x.txt"), "a~x.txt");
        assert_eq!(super::drop_name("noext~3"), "noext");
        assert_eq!((super::variant("a.txt"), super::variant("a~2.txt"), super::variant("a~10.txt")), (1, 2, 10));
    }
}
