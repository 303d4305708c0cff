//! The store's damage and recovery, from outside: the real binary on a store damaged on disk in
//! each way an operator meets (flipped bytes, truncation, lost files, foreign formats), refusing
//! with 65 and changing nothing; `verify`, `export`, `import` and `rebuild` putting it right.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use support::{BASE_CONFIG, Site, wait_until};

/// Every file under `dir` (relative path -> bytes); the control socket is not a file.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let t = e.file_type().expect("type");
            if t.is_dir() {
                walk(base, &p, out);
            } else if t.is_file() {
                let rel = p.strip_prefix(base).expect("under").to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The ids of every item in every RSS document under feeds/ (the feed and its archive pages).
fn published_ids(site: &Site) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for (name, bytes) in files(&site.path("feeds")) {
        if !name.ends_with(".rss") {
            continue;
        }
        let text = String::from_utf8(bytes).expect("utf-8");
        for part in text.split("<guid").skip(1) {
            let id = part.split_once('>').and_then(|(_, r)| r.split_once("</guid>")).map(|(id, _)| id);
            ids.insert(id.expect("a guid").to_string());
        }
    }
    ids
}

const LIMIT_5: &str = "limit = 5";

/// A site with `n` articles published (limit 5, so most of them are on archive pages) by one
/// `run --once` (a young store: sled has written no snapshot); with `edit`, one of them is then
/// edited by a second run (two files in done/, version 2).
fn published_site(n: usize, body_words: usize, edit: bool) -> Site {
    let site = Site::with_config(&BASE_CONFIG.replace("limit = 50", LIMIT_5));
    for i in 0..n {
        let body = format!(
            "Title: Kabar nomor {i}\nDate: 2026-11-{:02} 08:{:02}\n\nJAKARTA - {}\n",
            1 + i / 60,
            i % 60,
            format!("Isi kabar {i}. ").repeat(body_words)
        );
        site.drop_file(&format!("kabar-{i:03}.txt"), body.as_bytes());
    }
    site.run_once();
    if edit {
        site.drop_file(
            "kabar-000.txt",
            b"Title: Kabar nomor 0, diperbaiki\nDate: 2026-11-01 08:00\n\nJAKARTA - Isi yang benar.\n",
        );
        site.run_once();
    }
    assert_eq!(site.files_in("drop/done").len(), n + usize::from(edit));
    assert!(site.path("feeds/all/archive/1.rss").exists(), "no archive pages were cut");
    site
}

/// A copy of a site's whole directory (config paths are relative to it).
fn clone_site(site: &Site) -> Site {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", site.dir.path().display()))
        .arg(dir.path())
        .status()
        .expect("cp");
    assert!(status.success());
    let config = dir.path().join("siar.toml");
    Site { dir, config }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

/// The refusal every command gives a damaged store: 65, one message naming the store and the
/// next steps, no panic report.
fn assert_refused(site: &Site, args: &[&str], case: &str) {
    let out = site.siar(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{case}: siar {args:?}:\n{}", text(&out));
    let state = site.path("state").display().to_string();
    assert!(err.contains(&state), "{case}: {args:?} does not name the store:\n{err}");
    assert!(err.contains("siar verify") && err.contains("siar rebuild"), "{case}: no next step:\n{err}");
    assert_eq!(err.matches("siar: error").count(), 1, "{case}: one message:\n{err}");
    assert!(!err.contains("panicked at"), "{case}: a panic report:\n{err}");
}

fn flip(path: &Path, at: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = fs::OpenOptions::new().read(true).write(true).open(path).expect("open");
    let mut b = [0u8; 8];
    f.seek(SeekFrom::Start(at)).expect("seek");
    f.read_exact(&mut b).expect("read");
    f.seek(SeekFrom::Start(at)).expect("seek");
    f.write_all(&b.map(|x| x ^ 0xff)).expect("write");
}

/// How far into sled's file its data reaches (it preallocates with zeros).
fn data_len(path: &Path) -> u64 {
    let bytes = fs::read(path).expect("db");
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i as u64 + 1)
}

fn truncate(path: &Path, fraction: u64) {
    let f = fs::OpenOptions::new().write(true).open(path).expect("open");
    let len = f.metadata().expect("meta").len();
    f.set_len(len / fraction).expect("truncate");
}

/// Damages the site as `damage` does, then checks every refusal, that nothing on disk changed
/// (feeds, archive pages, their .gz, the store's bytes), that a daemon exits 65 without
/// publishing, and that `verify` says 65 too; then `rebuild` and a publish give the same ids.
fn refused_then_rebuilt(base: &Site, case: &str, damage: impl FnOnce(&Path)) {
    let site = clone_site(base);
    let ids = published_ids(&site);
    assert!(ids.len() > 5, "{case}: too few ids to compare");
    damage(&site.path("state"));
    let (feeds, state) = (files(&site.path("feeds")), files(&site.path("state")));
    for args in [&["list"][..], &["run", "--once"], &["sources"]] {
        assert_refused(&site, args, case);
    }
    let out = site.siar(&["verify"]);
    assert_eq!(out.status.code(), Some(65), "{case}: verify:\n{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("problem:"),
        "{case}: verify lists no problem:\n{}",
        text(&out)
    );
    // A damaged store is not exported (a backup of what is left would replace a good one).
    let out = site.siar(&["export", "-o", site.path("x.jsonl").to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(65), "{case}: export:\n{}", text(&out));
    assert!(!site.path("x.jsonl").exists(), "{case}: a damaged store was exported");
    let mut daemon = site.spawn();
    let status = daemon.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(65), "{case}: the daemon:\n{}", daemon.log());
    assert!(files(&site.path("feeds")) == feeds, "{case}: the published files changed");
    assert!(files(&site.path("state")) == state, "{case}: the damaged store's files changed");

    // A restore or a chmod changes the files' times, not the order they were accepted in.
    if let Some(first) = site.files_in("drop/done").into_iter().find(|f| f == "kabar-000.txt") {
        use std::os::unix::fs::PermissionsExt;
        std::thread::sleep(Duration::from_millis(20));
        fs::set_permissions(site.path("drop/done").join(first), fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let out = site.siar(&["rebuild"]);
    assert!(out.status.success(), "{case}: rebuild:\n{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("files from") && said.contains("rebuilt"), "{case}: rebuild says what it did:\n{said}");
    let aside: Vec<_> = fs::read_dir(site.dir.path())
        .expect("ls")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("state.damaged-"))
        .collect();
    if !state.is_empty() {
        assert_eq!(aside.len(), 1, "{case}: the damaged store is not kept aside");
        assert!(files(&aside[0].path()) == state, "{case}: the store moved aside is not the damaged one");
    }
    site.run_once();
    assert_eq!(published_ids(&site), ids, "{case}: a rebuilt store publishes other ids");
    if base.files_in("drop/done").iter().any(|f| f.contains('~')) {
        let edited = site.article("kabar-000");
        let got = (edited["version"].as_u64(), edited["title"].as_str());
        assert_eq!(got, (Some(2), Some("Kabar nomor 0, diperbaiki")), "{case}: the edit is not version 2");
    }
    let out = site.siar(&["verify"]);
    assert!(out.status.success(), "{case}: verify after rebuild:\n{}", text(&out));
}

#[test]
fn a_young_store_damaged_in_any_way_is_refused_and_rebuilt_with_the_same_ids() {
    let base = published_site(30, 3, false);
    let names = files(&base.path("state")).into_keys().collect::<Vec<_>>();
    assert!(!names.iter().any(|k| k.starts_with("snap.")), "the store was meant to have no snapshot yet: {names:?}");
    refused_then_rebuilt(&base, "bytes flipped early", |s| flip(&s.join("db"), 100));
    refused_then_rebuilt(&base, "bytes flipped in the middle", |s| flip(&s.join("db"), data_len(&s.join("db")) / 3));
    refused_then_rebuilt(&base, "truncated small", |s| truncate(&s.join("db"), 50));
    refused_then_rebuilt(&base, "db deleted", |s| fs::remove_file(s.join("db")).expect("rm"));
    refused_then_rebuilt(&base, "garbage conf", |s| fs::write(s.join("conf"), [0x5a; 62]).expect("write"));
    refused_then_rebuilt(&base, "conf of another sled", |s| {
        let conf = fs::read(s.join("conf")).expect("conf");
        let text = String::from_utf8_lossy(&conf).replace("version: 0.34", "version: 0.31");
        fs::write(s.join("conf"), text.as_bytes()).expect("write")
    });
    refused_then_rebuilt(&base, "state directory deleted", |s| fs::remove_dir_all(s).expect("rm -r"));
}

#[test]
fn a_store_with_a_snapshot_and_a_large_one_are_refused_too() {
    let base = published_site(30, 3, true);
    // A read opens, recovers and closes the store: sled writes its snapshot.
    assert!(base.siar(&["list"]).status.success());
    assert!(files(&base.path("state")).keys().any(|k| k.starts_with("snap.")), "no snapshot was written");
    refused_then_rebuilt(&base, "flipped, with a snapshot", |s| flip(&s.join("db"), data_len(&s.join("db")) / 3));
    refused_then_rebuilt(&base, "snapshot and db deleted", |s| {
        for f in fs::read_dir(s).expect("ls").flatten() {
            if f.file_name().to_string_lossy().starts_with("snap.") {
                fs::remove_file(f.path()).expect("rm");
            }
        }
        fs::remove_file(s.join("db")).expect("rm")
    });
    // Large enough that sled, reading half of it, panics (index out of bounds and the like).
    let large = published_site(200, 400, false);
    refused_then_rebuilt(&large, "large, truncated to half", |s| truncate(&s.join("db"), 2));
}

#[test]
fn verify_says_clean_and_finds_a_damaged_index_and_a_running_daemon_answers_too() {
    let site = Site::new();
    site.drop_file("a.txt", b"Title: Satu\n\nJAKARTA - Isi satu.\n");
    site.run_once();
    let out = site.siar(&["verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 articles"), "{}", text(&out));
    let state = files(&site.path("state"));
    assert!(files(&site.path("state")) == state, "verify changed the store");

    // An index entry lost (through a failpoint in the put): verify lists it, 65.
    let fp = site.path("failpoints");
    fs::create_dir_all(&fp).expect("mkdir");
    fs::write(fp.join("store-skip-by-source"), b"").expect("failpoint");
    site.drop_file("b.txt", b"Title: Dua\n\nJAKARTA - Isi dua.\n");
    let out = site.command(&["run", "--once"]).env("SIAR_FAILPOINTS", &fp).output().expect("run");
    assert!(out.status.success(), "{}", text(&out));
    let before = files(&site.path("state"));
    let out = site.siar(&["verify"]);
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("by_source: article drop/b has no entry"), "{said}");
    assert!(files(&site.path("state")) == before, "verify changed the store");

    // While the daemon holds the store, verify and export ask it.
    let mut daemon = site.spawn();
    wait_until(Duration::from_secs(20), "the daemon running", || daemon.log().contains("running"));
    let out = site.siar(&["verify"]);
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("has no entry"), "{}", text(&out));
    let out = site.siar(&["export"]);
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).expect("utf-8").lines().collect();
    assert!(lines[0].contains("\"format\":\"siar-export\"") && lines[0].contains("\"siar\""), "{}", lines[0]);
    assert_eq!(lines.last().copied(), Some("{\"record\":\"end\",\"articles\":2}"));
    // rebuild refuses while the daemon holds the store, and changes nothing.
    let out = site.siar(&["rebuild"]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert!(site.path("state").join("db").exists());
    assert!(daemon.stop().success());
    // A stopped daemon leaves its store stamped clean: the next start needs no copy.
    let ledger: serde_json::Value =
        serde_json::from_slice(&fs::read(site.path("state/siar.ledger")).expect("ledger")).expect("json");
    assert!(ledger["clean"].as_array().is_some_and(|c| !c.is_empty()), "no clean stamp after a stop: {ledger}");
    assert_eq!(site.list().len(), 2);
}

#[test]
fn export_import_export_is_byte_identical_and_so_are_the_feeds() {
    let site = published_site(30, 3, true);
    let export = site.path("export.jsonl");
    let out = site.siar(&["export", "--output", export.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
    let first = fs::read(&export).expect("export");
    let other = Site::with_config(&BASE_CONFIG.replace("limit = 50", LIMIT_5));
    let out = other.siar(&["import", export.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 30 articles (1 earlier versions)"),
        "{}",
        text(&out)
    );
    let out = other.siar(&["export"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stdout == first, "export -> import -> export differs");
    // A second import into a store that holds articles is refused.
    let out = other.siar(&["import", export.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs an empty or absent store"), "{}", text(&out));
    // Feeds and archive pages published from the import are those of the original, byte for byte.
    other.run_once();
    let (a, b) = (files(&site.path("feeds")), files(&other.path("feeds")));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(b[name] == *bytes, "{name} differs after import");
    }
    // A cut-short export is refused, not half imported silently.
    let cut = site.path("cut.jsonl");
    fs::write(&cut, &first[..first.len() / 2]).expect("write");
    let third = Site::new();
    let out = third.siar(&["import", cut.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
}

#[test]
fn rebuild_from_an_export_keeps_what_done_cannot_give() {
    let site = published_site(12, 3, true);
    let export = site.path("backup.jsonl");
    assert!(site.siar(&["export", "-o", export.to_str().expect("utf-8")]).status.success());
    let pages_before = files(&site.path("feeds/all/archive"));
    // Newer articles after the backup: rebuild takes the export, then done/.
    site.drop_file("baru.txt", b"Title: Kabar baru\nDate: 2026-11-20 08:00\n\nJAKARTA - Isi baru.\n");
    site.run_once();
    let ids = published_ids(&site);
    fs::remove_dir_all(site.path("state")).expect("rm");
    assert_refused(&site, &["run", "--once"], "state deleted");
    let out = site.siar(&["rebuild", "--from", export.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("read 14 files") && said.contains("1 articles"), "{said}");
    site.run_once();
    assert_eq!(published_ids(&site), ids);
    // Pages cut before the backup come back byte for byte (the versions they were cut with).
    let pages_after = files(&site.path("feeds/all/archive"));
    for (name, bytes) in &pages_before {
        if name.starts_with("1.") {
            assert!(pages_after[name] == *bytes, "archive page {name} changed");
        }
    }
}

#[test]
fn a_store_without_a_ledger_is_adopted_and_protected_from_then_on() {
    let site = Site::new();
    for i in 0..4 {
        site.drop_file(&format!("a{i}.txt"), format!("Title: Kabar {i}\n\nJAKARTA - Isi {i}.\n").as_bytes());
    }
    site.run_once();
    // As a store written before ledgers existed.
    fs::remove_file(site.path("state/siar.ledger")).expect("rm ledger");
    assert_eq!(site.list().len(), 4);
    let ledger: serde_json::Value =
        serde_json::from_slice(&fs::read(site.path("state/siar.ledger")).expect("ledger")).expect("json");
    assert_eq!(ledger["held"], 4);
    // Lost articles are noticed from then on.
    let mut l = ledger.clone();
    l["held"] = 6.into();
    l.as_object_mut().expect("object").remove("clean");
    fs::write(site.path("state/siar.ledger"), l.to_string()).expect("write");
    assert_refused(&site, &["list"], "fewer than the ledger holds");
}

fn per_second_with_server(limit: usize) -> Site {
    let config = BASE_CONFIG
        .replace("schedule = \"0 0 1 1 *\"", "schedule = \"* * * * * *\"")
        .replace("limit = 50", &format!("limit = {limit}"));
    Site::with_config(&format!("{config}\n[server]\nlisten = \"127.0.0.1:0\"\n"))
}

fn items(site: &Site) -> usize {
    fs::read_to_string(site.path("feeds/all.rss")).map_or(0, |t| t.matches("<item>").count())
}

/// The second line of defence: the store (through a failpoint) returns fewer articles than it
/// holds; the publish is refused, logged once with the counts, /readyz says why, the previous
/// files stay; once the store answers whole again, publishing resumes.
#[test]
fn a_publish_that_would_lose_items_is_refused_and_the_previous_feeds_stay() {
    let site = per_second_with_server(50);
    for i in 0..6 {
        site.drop_file(&format!("a{i}.txt"), format!("Title: Kabar {i}\n\nJAKARTA - Isi kabar {i}.\n").as_bytes());
    }
    let fp = site.path("failpoints");
    fs::create_dir_all(&fp).expect("mkdir");
    let mut daemon = site.spawn_with(&[("SIAR_FAILPOINTS", fp.to_str().expect("utf-8"))]);
    let addr = daemon.addr();
    wait_until(Duration::from_secs(30), "6 items published", || items(&site) == 6);
    wait_until(Duration::from_secs(10), "ready", || support::http(&addr, "GET", "/readyz", &[]).status == 200);
    // The pass that wrote the RSS may still be writing Atom and JSON.
    wait_until(Duration::from_secs(10), "all three documents with 6 items", || {
        let json: serde_json::Value = fs::read(site.path("feeds/all.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let atom = fs::read_to_string(site.path("feeds/all.atom")).unwrap_or_default();
        json["items"].as_array().is_some_and(|i| i.len() == 6) && atom.matches("<entry>").count() == 6
    });
    std::thread::sleep(Duration::from_millis(500));
    let before = files(&site.path("feeds"));

    fs::write(fp.join("store-fewer-articles"), b"").expect("failpoint");
    site.drop_file("b.txt", b"Title: Kabar baru\n\nJAKARTA - Isi baru.\n");
    let mut why = String::new();
    wait_until(Duration::from_secs(30), "readyz 503", || {
        let r = support::http(&addr, "GET", "/readyz", &[]);
        why = r.text();
        r.status == 503
    });
    assert!(why.contains("feed all: publish refused") && why.contains("where it has 6"), "{why}");
    std::thread::sleep(Duration::from_millis(2500));
    let log = daemon.log();
    assert_eq!(log.matches("feed all: publish refused").count(), 1, "logged once:\n{log}");
    let after = files(&site.path("feeds"));
    let changed: Vec<&String> = before.keys().filter(|k| after.get(*k) != before.get(*k)).collect();
    assert!(after.len() == before.len() && changed.is_empty(), "a refused publish changed {changed:?}:\n{log}");
    assert_eq!(support::http(&addr, "GET", "/feeds/all.rss", &[]).text().matches("<item>").count(), 6);
    let metrics = support::http(&addr, "GET", "/metrics", &[]).text();
    assert!(metrics.contains("siar_publish_refused{feed=\"all\"} 1"), "{metrics}");

    fs::remove_file(fp.join("store-fewer-articles")).expect("rm failpoint");
    wait_until(Duration::from_secs(30), "7 items published", || items(&site) == 7);
    wait_until(Duration::from_secs(10), "ready again", || support::http(&addr, "GET", "/readyz", &[]).status == 200);
    assert!(daemon.log().contains("feed all: publishes again"));
    assert!(daemon.stop().success());
}

/// A published archive page never changes its articles: a store that forgot where its archive
/// stood and returns other articles would cut page 1 again; that publish is refused.
#[test]
fn an_archive_page_is_never_cut_again_with_other_articles() {
    let site = per_second_with_server(5);
    for i in 0..20 {
        let body = format!("Title: Kabar {i}\nDate: 2026-11-01 08:{i:02}\n\nJAKARTA - Isi kabar {i}.\n");
        site.drop_file(&format!("a{i:02}.txt"), body.as_bytes());
    }
    let fp = site.path("failpoints");
    fs::create_dir_all(&fp).expect("mkdir");
    let mut daemon = site.spawn_with(&[("SIAR_FAILPOINTS", fp.to_str().expect("utf-8"))]);
    wait_until(Duration::from_secs(30), "3 archive pages", || site.path("feeds/all/archive/3.json").exists());
    std::thread::sleep(Duration::from_millis(1500));
    let before = files(&site.path("feeds"));
    fs::write(fp.join("store-archive-reset"), b"").expect("failpoint");
    fs::write(fp.join("store-fewer-articles"), b"").expect("failpoint");
    site.drop_file("b.txt", b"Title: Kabar baru\nDate: 2026-11-01 09:00\n\nJAKARTA - Isi baru.\n");
    wait_until(Duration::from_secs(30), "the refusal", || daemon.log().contains("publish refused"));
    let log = daemon.log();
    assert!(log.contains("archive page 1 was published with 5 articles"), "{log}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(files(&site.path("feeds")) == before, "a refused publish changed the files");
    assert!(daemon.stop().success());
}

/// An aggregator's store (no drop-folder articles) rebuilt without an export is empty, and that
/// is no loss to refuse: its sources are polled again. The feeds on disk do not block the start.
#[test]
fn a_store_rebuilt_empty_starts_and_publishes_again() {
    let site = Site::new();
    site.drop_file("a.txt", b"Title: Satu\n\nJAKARTA - Isi satu.\n");
    site.run_once();
    fs::remove_file(site.path("drop/done/a.txt")).expect("rm");
    assert!(site.feed("all.rss").contains("<item>"));
    let out = site.siar(&["rebuild"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = site.siar(&["run", "--once"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!site.feed("all.rss").contains("<item>"), "the rebuilt (empty) store publishes");
    site.drop_file("b.txt", b"Title: Dua\n\nJAKARTA - Isi dua.\n");
    site.run_once();
    assert!(site.feed("all.rss").contains("Dua"));
}

/// A panic inside the store after it opened (sled meeting a damaged page on a read; here a test's
/// failpoint) ends a command and the daemon with 65 and the damaged-store message, never 101.
#[test]
fn a_panic_reading_the_store_is_65_never_101() {
    let site = Site::new();
    site.drop_file("a.txt", b"Title: Satu\n\nJAKARTA - Isi satu.\n");
    site.run_once();
    let fp = site.path("failpoints");
    fs::create_dir_all(&fp).expect("mkdir");
    fs::write(fp.join("store-read-panic"), b"").expect("failpoint");
    let out = site.command(&["list"]).env("SIAR_FAILPOINTS", &fp).output().expect("list");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(err.contains("is damaged") && err.contains("siar rebuild") && !err.contains("panicked at"), "{err}");
    site.drop_file("b.txt", b"Title: Dua\n\nJAKARTA - Isi dua.\n");
    let mut daemon = site.spawn_with(&[("SIAR_FAILPOINTS", fp.to_str().expect("utf-8"))]);
    assert_eq!(daemon.wait(Duration::from_secs(30)).code(), Some(65), "{}", daemon.log());
}
