//! Test harness: a site in a temp dir (config, drop folder, store, output), the real `siar`
//! binary run against it, and a Python with feedparser for the reader's-eye check.

#![allow(dead_code)]

pub mod origin;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_siar");

/// The config every test starts from; `extra` is appended (more [[feed]] tables, say).
pub const BASE_CONFIG: &str = r#"
[site]
title = "Suara Uji"
link = "https://news.example.org/"
description = "Berita uji"
language = "id"
author = "Redaksi Uji"
timezone = "Asia/Jakarta"

[paths]
drop = "drop"
state = "state"
output = "feeds"

[ingest]
max_size = "64KiB"
settle = "200ms"
rescan = "1s"
article_link = "{site}berita/{slug}"

[publish]
schedule = "0 0 1 1 *"
on_ingest = true
debounce = "200ms"

[[feed]]
name = "all"
title = "Suara Uji — semua"
limit = 50
"#;

pub struct Site {
    pub dir: TempDir,
    pub config: PathBuf,
}

impl Site {
    pub fn new() -> Site {
        Site::with_config(BASE_CONFIG)
    }

    pub fn with_config(text: &str) -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("siar.toml");
        fs::write(&config, text).expect("write config");
        Site { dir, config }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn drop_dir(&self) -> PathBuf {
        self.path("drop")
    }

    /// Drops a file the way producers should: a dotfile, then a rename.
    pub fn drop_file(&self, name: &str, bytes: &[u8]) {
        let drop = self.drop_dir();
        fs::create_dir_all(&drop).expect("mkdir drop");
        let tmp = drop.join(format!(".{name}.uploading"));
        fs::write(&tmp, bytes).expect("write");
        fs::rename(&tmp, drop.join(name)).expect("rename");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config").arg(&self.config).args(args).env_remove("SIAR_CONFIG").env("RUST_LOG", "info");
        c
    }

    pub fn siar(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run siar")
    }

    /// `run --once`, which must succeed; returns its log.
    pub fn run_once(&self) -> String {
        let out = self.siar(&["run", "--once"]);
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "run --once failed: {:?}\n{log}", out.status);
        log
    }

    /// `list --json`, newest first.
    pub fn list(&self) -> Vec<Value> {
        let out = self.siar(&["list", "--json"]);
        assert!(out.status.success(), "list failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("list --json is a JSON array")
    }

    pub fn article(&self, slug: &str) -> Value {
        let key = format!("drop/{slug}");
        self.list().into_iter().find(|a| a["key"] == key.as_str()).unwrap_or_else(|| panic!("no article {key}"))
    }

    pub fn feed(&self, file: &str) -> String {
        fs::read_to_string(self.path("feeds").join(file)).unwrap_or_else(|e| panic!("feeds/{file}: {e}"))
    }

    pub fn files_in(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(self.path(rel)) {
            Ok(rd) => rd
                .flatten()
                // Dotfiles are producers' temp names and siar's own notes (done/.accepted).
                .filter(|e| e.path().is_file() && !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// Files still waiting in the drop folder (not dotfiles).
    pub fn pending(&self) -> Vec<String> {
        self.files_in("drop")
    }

    pub fn spawn(&self) -> Daemon {
        self.spawn_with(&[])
    }

    pub fn spawn_with(&self, env: &[(&str, &str)]) -> Daemon {
        self.spawn_configured(|cmd| {
            for (k, v) in env {
                cmd.env(k, v);
            }
        })
    }

    /// `siar run` with the command adjusted first (environment, limits, ...).
    pub fn spawn_configured(&self, adjust: impl FnOnce(&mut Command)) -> Daemon {
        let log = self.path(&format!("daemon-{}.log", unique()));
        let file = fs::File::create(&log).expect("log file");
        let mut cmd = self.command(&["run"]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(file);
        adjust(&mut cmd);
        Daemon { child: Some(cmd.spawn().expect("spawn siar run")), log }
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).expect("running")
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([&format!("-{sig}"), &self.pid().to_string()]).status().expect("kill");
        assert!(ok.success());
    }

    /// Waits for the process to exit (after a signal), at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "siar did not exit within {limit:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait(Duration::from_secs(30))
    }

    pub fn kill9(&mut self) {
        self.signal("KILL");
        self.wait(Duration::from_secs(10));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `cond` until it holds or `limit` passes.
pub fn wait_until(limit: Duration, what: &str, cond: impl FnMut() -> bool) {
    wait_until_every(limit, Duration::from_millis(25), what, cond);
}

pub fn wait_until_every(limit: Duration, every: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(every);
    }
}

/// A Python that has feedparser: $SIAR_TEST_PYTHON, else a venv under target/ made on first use.
/// None (with a loud note) when it cannot be had here; under CI that is a failure.
pub fn feedparser_python() -> Option<PathBuf> {
    // Tests run in parallel threads: one of them makes the venv, the others wait for it.
    static PYTHON: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    PYTHON.get_or_init(make_feedparser_python).clone()
}

fn make_feedparser_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SIAR_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("feedparser-venv");
    let python = venv.join("bin/python");
    let has = |py: &Path| Command::new(py).args(["-c", "import feedparser"]).output().is_ok_and(|o| o.status.success());
    if has(&python) {
        return Some(python);
    }
    let made = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "feedparser"])
            .status()
            .is_ok_and(|s| s.success());
    if made && has(&python) {
        return Some(python);
    }
    let why = "SKIPPED: cannot create a Python venv with feedparser (python3 -m venv + pip install feedparser failed)";
    if std::env::var_os("CI").is_some() {
        panic!("{why}; CI must be able to run this check");
    }
    eprintln!("\n*** {why}: the feedparser check did not run ***\n");
    None
}

/// A raw HTTP/1.1 response, as the test client read it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection, the target sent byte for byte (no normalisation, so
/// `/feeds/../x` reaches the server as written).
pub fn http(addr: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect to siar");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req += &format!("{n}: {v}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_string())).collect();
    Resp { status, headers, body: raw[end + 4..].to_vec() }
}

impl Daemon {
    /// The address the server logged ("listening on <addr>"); `metrics` for the metrics listener.
    pub fn addr_of(&self, metrics: bool) -> String {
        let mut found = String::new();
        wait_until(Duration::from_secs(30), "the server to listen", || {
            let log = self.log();
            let hit = log.lines().filter(|l| l.contains("listening on ")).find(|l| l.contains("(metrics)") == metrics);
            if let Some(l) = hit {
                let rest = &l[l.find("listening on ").unwrap_or(0) + "listening on ".len()..];
                found = rest.split_whitespace().next().unwrap_or_default().to_string();
            }
            !found.is_empty()
        });
        found
    }

    pub fn addr(&self) -> String {
        self.addr_of(false)
    }
}

/// A small tmpfs mounted over a directory for a test's life, to run out of space for real. Needs
/// root and a kernel that lets it mount; `None` (with the reason printed) otherwise.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: a full-disk test needs root to mount a tmpfs");
            return None;
        }
        fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount");
        if !out.status.success() {
            eprintln!("SKIPPED: a full-disk test cannot mount a tmpfs here: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Some(Tmpfs { dir: dir.to_path_buf() })
    }

    /// Fills every free byte with `<dir>/.filler` (a dotfile: the drop folder ignores it).
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = fs::File::create(self.filler()).expect("filler");
        let chunk = vec![0x5a_u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", self.dir.display()),
            }
        }
        // The last partial page too.
        while f.write(&[0x5a]).is_ok_and(|n| n == 1) {}
    }

    /// Gives the space back.
    pub fn free(&self) {
        fs::remove_file(self.filler()).expect("remove the filler");
    }

    fn filler(&self) -> PathBuf {
        self.dir.join(".filler")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

impl Tmpfs {
    /// Remounts read-only (`true`) or read-write: EROFS for every write, root included.
    pub fn read_only(&self, ro: bool) {
        let opt = if ro { "remount,ro" } else { "remount,rw" };
        let ok = Command::new("mount").args(["-o", opt]).arg(&self.dir).status().is_ok_and(|s| s.success());
        assert!(ok, "mount -o {opt} {}", self.dir.display());
    }
}
