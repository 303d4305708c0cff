//! The `siar` command line: load the config, run a command, map failures to sysexits codes.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::{Parser, Subcommand};
use siar::config::Config;
use siar::daemon::{self, DirState, EX_CONFIG, EX_NOINPUT, EX_TEMPFAIL, Failure};
use siar::{control, ingest, opml};

#[derive(Parser)]
#[command(name = "siar", version, about = "Publishes and aggregates news feeds")]
struct Cli {
    /// Config file [default: $SIAR_CONFIG, else config/siar.toml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: ingest the drop folder, publish feeds on schedule
    Run {
        /// One full pass (ingest everything, publish every feed), then exit
        #[arg(long)]
        once: bool,
    },
    /// Validate the config and print what would run
    Check {
        /// Print nothing when the config is valid (errors still go to stderr)
        #[arg(long, short)]
        quiet: bool,
    },
    /// Hand files to the daemon by copying them into the drop folder atomically
    Ingest {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Show the external sources: last poll, last success, status, failures, items (also while the daemon runs)
    Sources {
        /// One JSON array of the sources' stored states
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: Option<SourcesAction>,
    },
    /// Partner keys for feeds with access = "key"
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Read every record of the store and check its indexes; exit 0 when clean, 65 with the problems (also while the daemon runs)
    Verify,
    /// Write the whole store as JSON Lines (articles with their history, sources, archives), to stdout by default (also while the daemon runs)
    Export {
        /// Write to this file (atomically) instead of stdout
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Read an export into an empty or absent store
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Move the store aside (<state>.damaged-<time>) and build a new one from an export and the drop folder's done/
    Rebuild {
        /// Start from this export, then add done/
        #[arg(long, value_name = "EXPORT")]
        from: Option<PathBuf>,
    },
    /// List stored articles, newest first
    List {
        /// One JSON array of the stored articles
        #[arg(long)]
        json: bool,
        /// At most this many articles
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Print a fresh random key (once: siar keeps only its hash) and the config line with its hash
    New {
        #[arg(value_name = "FEED")]
        feed: String,
    },
}

#[derive(Subcommand)]
enum SourcesAction {
    /// Add the feeds of an OPML file to the config as [[source]] tables (checked before writing)
    Import {
        #[arg(value_name = "FILE.opml")]
        file: PathBuf,
    },
    /// Print the configured sources as OPML 2.0
    Export,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli
        .config
        .or_else(|| std::env::var_os("SIAR_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("config/siar.toml"));
    // Logging follows the config's log_format/log_level; a config that does not load gets the
    // default (its error goes to stderr either way).
    let loaded = Config::load(&path);
    init_logging(loaded.as_ref().ok().map(|c| &c.log));
    siar::store::install_panic_hook(print_error);
    if let Command::Keys { action: KeysAction::New { feed } } = &cli.command {
        // Works with a config that does not load yet: a keyed feed without keys is invalid.
        return match new_key(&path, feed) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("siar: error: {e}");
                ExitCode::from(1)
            }
        };
    }
    let result = loaded.map_err(|e| Failure::new(EX_CONFIG, e)).and_then(|cfg| match cli.command {
        Command::Run { once } => run(cfg, once),
        Command::Check { quiet } => check(&cfg, quiet),
        Command::Ingest { files } => hand_in(&cfg, &files),
        Command::List { json, limit } => list(&cfg, json, limit),
        Command::Sources { action: None, json } => show_sources(&cfg, json),
        Command::Sources { action: Some(SourcesAction::Import { file }), .. } => import_sources(&cfg, &file),
        Command::Sources { action: Some(SourcesAction::Export), .. } => {
            print!("{}", opml::write(&cfg));
            Ok(())
        }
        Command::Keys { .. } => Ok(()),
        Command::Verify => siar::recover::verify(&cfg),
        Command::Export { output } => siar::recover::export(&cfg, output.as_deref()),
        Command::Import { file } => siar::recover::import(&cfg, &file),
        Command::Rebuild { from } => siar::recover::rebuild(&cfg, from.as_deref()),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            print_error(&format!("{:#}", f.error));
            ExitCode::from(u8::try_from(f.code).unwrap_or(1))
        }
    }
}

/// `siar: error: …` on stderr; under journald every line an error (`journalctl -p err`), a config
/// excerpt too.
fn print_error(message: &str) {
    let text = format!("siar: error: {message}");
    if under_journald() {
        text.lines().for_each(|l| eprintln!("<3>{l}"));
    } else {
        eprintln!("{text}");
    }
}

/// `siar keys new FEED`: the key on stdout (shown this once), the `keys` line to paste below it.
fn new_key(path: &std::path::Path, feed: &str) -> Result<(), String> {
    if !siar::config::is_feed_name(feed) {
        return Err(format!("{feed:?} is not a feed name (a-z, 0-9, '-' and '_')"));
    }
    let key = siar::access::new_key()?;
    println!("key: {key}");
    println!("keys = [\"{}\"]", siar::access::hash_line(&key));
    let known = Config::load(path).map(|cfg| cfg.feeds.iter().any(|f| f.name == feed));
    eprintln!(
        "Give the key to the partner (siar keeps only its hash; it cannot show the key again).\n\
         They send it as `Authorization: Bearer <key>` or `?key=<key>`.\n\
         In {}, the [[feed]] named {feed:?} needs access = \"key\" and the hash in its keys list\n\
         (add it beside the old ones to rotate, then remove the old ones).{}",
        path.display(),
        match known {
            Ok(true) => String::new(),
            Ok(false) => format!("\nNote: there is no [[feed]] named {feed:?} in {} yet.", path.display()),
            Err(_) => String::new(),
        }
    );
    Ok(())
}

/// Logs go to stderr: text lines by default; under journald (`$JOURNAL_STREAM` names our stderr)
/// without our own timestamps and with `<N>` syslog priorities, which journald reads as the
/// entry's level; or one JSON object per event with `log_format = "json"`.
fn init_logging(log: Option<&siar::config::Log>) {
    use tracing_subscriber::EnvFilter;
    let default = log.map_or("info", |l| l.level.as_str());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{default},sled=off")));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if log.is_some_and(|l| l.json) {
        builder.json().with_current_span(false).init();
    } else if under_journald() {
        builder.event_format(JournalLine).init();
    } else {
        builder.with_target(false).with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Whether stderr is the journal stream systemd gave us (`$JOURNAL_STREAM` = "device:inode").
fn under_journald() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = v.to_str().and_then(|v| v.split_once(':')) else { return false };
    // fstat of fd 2 itself: the journal's stream is a socket, which /proc/self/fd/2 cannot open.
    let Ok(meta) = std::io::stderr().as_fd().try_clone_to_owned().and_then(|fd| std::fs::File::from(fd).metadata())
    else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// `<3>message key=value` (sd-daemon(3) priority prefixes; journald adds the time). A message of
/// several lines (a config error with its excerpt) carries the prefix on each, so every line of it
/// keeps its priority.
struct JournalLine;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JournalLine
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        let mut text = String::new();
        ctx.field_format().format_fields(tracing_subscriber::fmt::format::Writer::new(&mut text), event)?;
        for line in text.lines() {
            writeln!(writer, "<{priority}>{line}")?;
        }
        Ok(())
    }
}

fn run(cfg: Config, once: bool) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Blocking work (ingest passes, parses, publishes, /metrics and /readyz reads) queues
        // beyond this instead of growing the thread count (and glibc's arenas) with bursts.
        .max_blocking_threads(64)
        .build()
        .map_err(|e| Failure::new(EX_TEMPFAIL, anyhow::anyhow!("cannot start the runtime: {e}")))?;
    let result = runtime.block_on(daemon::run(cfg, once));
    // A blocking task still parsing a file must not hold the exit (it was told to stop; what it
    // did not acknowledge stays in the drop folder).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

fn check(cfg: &Config, quiet: bool) -> Result<(), Failure> {
    let mut states = Vec::new();
    for (key, path) in [("drop", &cfg.paths.drop), ("state", &cfg.paths.state), ("output", &cfg.paths.output)] {
        let state = match daemon::check_dir(key, path) {
            Ok(DirState::Ready) => "ready",
            Ok(DirState::Missing) => "missing, created at start",
            Err(f) => return Err(Failure::new(EX_CONFIG, anyhow::anyhow!("{}: {:#}", cfg.file.display(), f.error))),
        };
        states.push((key, path, state));
    }
    if quiet {
        return Ok(());
    }
    let mut out = String::new();
    let s = &cfg.site;
    out += &format!("config {} is valid\n", cfg.file.display());
    out += &format!(
        "site: {} <{}> language {}, time zone {}, ids tag:{},…\n",
        s.title, s.link, s.language, s.timezone, s.id_authority
    );
    for (key, path, state) in states {
        out += &format!("{key:>6}: {} ({state})\n", path.display());
    }
    out += &format!(
        "ingest: max {} bytes per file, settle {:?}, rescan every {:?}, watcher {}\n",
        cfg.ingest.max_size,
        cfg.ingest.settle,
        cfg.ingest.rescan,
        if cfg.ingest.watch { "on" } else { "off" }
    );
    out += "feeds:\n";
    for f in &cfg.feeds {
        let mut select = Vec::new();
        if !f.categories.is_empty() {
            select.push(format!("categories {}", f.categories.join(", ")));
        }
        if !f.languages.is_empty() {
            select.push(format!("languages {}", f.languages.join(", ")));
        }
        if let Some(src) = &f.sources {
            select.push(format!("sources {}", src.join(", ")));
        }
        if let Some(n) = f.per_source_limit {
            select.push(format!("at most {n} per source"));
        }
        let select = if select.is_empty() { "all articles".to_string() } else { select.join("; ") };
        let access = match &f.access {
            siar::config::Access::Public if f.archived() => {
                format!("public, archive pages of {}", f.archive_page_size())
            }
            siar::config::Access::Public => "public, no archive".to_string(),
            siar::config::Access::Key(k) => format!("keyed ({} keys), served only by the built-in server", k.len()),
        };
        out += &format!("  {} \"{}\": newest {} of {select}; {access}\n", f.name, f.title, f.limit);
        for ext in siar::publish::FORMATS {
            match &f.access {
                siar::config::Access::Public => {
                    let file = cfg.paths.output.join(format!("{}.{ext}", f.name));
                    out += &format!("    {} -> {}\n", file.display(), f.url(&cfg.publish, ext));
                }
                siar::config::Access::Key(_) => out += &format!("    {}\n", f.url(&cfg.publish, ext)),
            }
        }
    }
    let f = &cfg.fetch;
    out += &format!(
        "fetch: every {:?} by default, timeout {:?} (connect {:?}), max body {} bytes, {} at once (2 per host), backoff up to {:?}, private addresses {}\n",
        f.every,
        f.timeout,
        f.connect_timeout,
        f.max_body,
        f.concurrency,
        f.max_backoff,
        if f.allow_private { "allowed" } else { "refused" }
    );
    if cfg.sources.is_empty() {
        out += "sources: none (only the drop folder)\n";
    } else {
        out += "sources:\n";
    }
    for s in &cfg.sources {
        let when = match &s.schedule {
            Some(c) => format!("schedule \"{}\"", c.text()),
            None => format!("every {:?}", s.every),
        };
        let mut extra = Vec::new();
        if !s.enabled {
            extra.push("disabled".to_string());
        }
        if let Some(c) = &s.category {
            extra.push(format!("category {c}"));
        }
        if let Some(l) = &s.language {
            extra.push(format!("language {l}"));
        }
        if let Some(n) = s.max_items {
            extra.push(format!("keeps {n} items"));
        }
        if let Some(a) = s.max_age {
            extra.push(format!("keeps {a:?}"));
        }
        if s.allow_private != f.allow_private {
            extra.push(format!("private addresses {}", if s.allow_private { "allowed" } else { "refused" }));
        }
        let extra = if extra.is_empty() { String::new() } else { format!(" ({})", extra.join(", ")) };
        out += &format!("  {} <{}> {when}{extra}\n", s.name, s.url);
    }
    match &cfg.server {
        Some(sv) => {
            out += &format!(
                "server: {} under {}, max-age {:?}, header timeout {:?}, keep-alive {:?}, {} connections at most; /metrics {}\n",
                sv.listen,
                sv.base_path,
                sv.cache_max_age,
                sv.header_timeout,
                sv.keep_alive,
                sv.max_connections,
                sv.metrics_listen.map_or("on the same address".to_string(), |a| format!("on {a}"))
            );
        }
        None => out += "server: off (no [server] table); serve the output directory with another server\n",
    }
    if !cfg.hubs.is_empty() {
        let hubs: Vec<&str> = cfg.hubs.iter().map(|h| h.as_str()).collect();
        out += &format!("websub hubs: {}\n", hubs.join(", "));
    }
    let sched = &cfg.publish.schedule;
    out += &format!(
        "publish: schedule \"{}\" ({}){}\n",
        sched.text(),
        sched.timezone(),
        if cfg.publish.on_ingest {
            format!(", and {:?} after new articles", cfg.publish.debounce)
        } else {
            String::new()
        }
    );
    out += "next publish times:\n";
    for t in sched.upcoming(Utc::now(), 3) {
        out += &format!("  {}\n", t.with_timezone(&sched.timezone()).to_rfc3339());
    }
    print!("{out}");
    Ok(())
}

fn hand_in(cfg: &Config, files: &[PathBuf]) -> Result<(), Failure> {
    let drop = &cfg.paths.drop;
    if let DirState::Missing = daemon::check_dir("drop", drop)? {
        std::fs::create_dir_all(drop).map_err(|e| {
            Failure::new(daemon::EX_CANTCREAT, anyhow::anyhow!("cannot create {}: {e}", drop.display()))
        })?;
    }
    let mut failed = 0;
    for file in files {
        let is_file = std::fs::metadata(file).map(|m| m.is_file());
        let result = match is_file {
            Ok(true) => ingest::dropfolder::hand_in(file, drop),
            Ok(false) => Err(std::io::Error::other("not a regular file")),
            Err(e) => Err(e),
        };
        match result {
            Ok(to) => println!("{} -> {}", file.display(), to.display()),
            Err(e) => {
                failed += 1;
                eprintln!("siar: cannot hand in {}: {e}", file.display());
            }
        }
    }
    if failed > 0 {
        return Err(Failure::new(EX_NOINPUT, anyhow::anyhow!("{failed} of {} files were not handed in", files.len())));
    }
    Ok(())
}

fn list(cfg: &Config, json: bool, limit: Option<usize>) -> Result<(), Failure> {
    let articles = if !cfg.paths.state.exists() {
        siar::recover::refuse_if_lost(cfg)?;
        eprintln!("siar: no store at {} yet: nothing ingested", cfg.paths.state.display());
        Vec::new()
    } else {
        match siar::recover::open_or_busy(cfg)? {
            Some(s) => {
                let listed = s.newest(limit.unwrap_or(usize::MAX), |_| true)?;
                s.close()?;
                listed
            }
            None => control::request_list(&cfg.paths.state, limit).map_err(|e| {
                Failure::new(
                    EX_TEMPFAIL,
                    anyhow::anyhow!("the store {} is held by a running siar, and {e}", cfg.paths.state.display()),
                )
            })?,
        }
    };
    let mut stdout = std::io::stdout().lock();
    let result = if json {
        serde_json::to_writer_pretty(&mut stdout, &articles)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(stdout))
    } else {
        articles
            .iter()
            .try_for_each(|a| writeln!(stdout, "{}  {}  v{}  {}", a.published.to_rfc3339(), a.id, a.version, a.title))
    };
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| Failure::new(daemon::EX_SOFTWARE, e)),
    }
}

fn show_sources(cfg: &Config, json: bool) -> Result<(), Failure> {
    let names: Vec<String> = cfg.sources.iter().map(|s| s.name.clone()).collect();
    let statuses = if !cfg.paths.state.exists() {
        siar::recover::refuse_if_lost(cfg)?;
        names.iter().map(|n| control::SourceStatus { name: n.clone(), items: 0, state: None }).collect()
    } else {
        match siar::recover::open_or_busy(cfg)? {
            Some(s) => {
                let statuses = control::source_statuses(&s, &names)?;
                s.close()?;
                statuses
            }
            None => control::request_sources(&cfg.paths.state).map_err(|e| {
                Failure::new(
                    EX_TEMPFAIL,
                    anyhow::anyhow!("the store {} is held by a running siar, and {e}", cfg.paths.state.display()),
                )
            })?,
        }
    };
    let mut out = String::new();
    if json {
        out = serde_json::to_string_pretty(&statuses).map_err(|e| Failure::new(daemon::EX_SOFTWARE, e))? + "\n";
    } else {
        let now = Utc::now();
        let when = |t: Option<chrono::DateTime<Utc>>| {
            t.map_or("never".to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        };
        for st in &statuses {
            let source = cfg.sources.iter().find(|s| s.name == st.name);
            let enabled = source.is_some_and(|s| s.enabled);
            let Some(state) = &st.state else {
                let status = if enabled { "not polled yet" } else { "disabled in the config" };
                out += &format!("{}  {status}  items 0\n", st.name);
                continue;
            };
            let status = if let Some(why) = &state.disabled {
                format!("disabled: {why}")
            } else if !enabled {
                "disabled in the config".to_string()
            } else if state.failures > 0 {
                format!("backing off until {} ({})", when(state.next_poll), state.detail)
            } else {
                state.status.clone()
            };
            out += &format!(
                "{}  {status}\n  url {}\n  last poll {}, last success {}, next poll {}, consecutive failures {}, items {}\n",
                st.name,
                state.url,
                when(state.last_poll),
                when(state.last_success),
                if state.disabled.is_some() || !enabled {
                    "none".to_string()
                } else {
                    when(state.next_poll.map(|t| t.max(now)))
                },
                state.failures,
                st.items
            );
            if state.failures == 0 && !state.detail.is_empty() && state.disabled.is_none() {
                out += &format!("  {}\n", state.detail);
            }
            if source.is_some_and(|s| s.url.as_str() != state.url) {
                out += &format!("  moved permanently: update url = \"{}\" in {}\n", state.url, cfg.file.display());
            }
        }
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| Failure::new(daemon::EX_SOFTWARE, e)),
    }
}

fn import_sources(cfg: &Config, file: &std::path::Path) -> Result<(), Failure> {
    let bytes = std::fs::read(file)
        .map_err(|e| Failure::new(EX_NOINPUT, anyhow::anyhow!("cannot read {}: {e}", file.display())))?;
    let outlines =
        opml::read(&bytes).map_err(|e| Failure::new(daemon::EX_DATAERR, anyhow::anyhow!("{}: {e}", file.display())))?;
    let (text, added, skipped) = opml::to_sources(cfg, &outlines);
    if added.is_empty() {
        println!(
            "nothing to add: {} feeds in {}, {skipped} already configured or unusable",
            outlines.len(),
            file.display()
        );
        return Ok(());
    }
    let current = std::fs::read_to_string(&cfg.file)
        .map_err(|e| Failure::new(EX_CONFIG, anyhow::anyhow!("cannot read {}: {e}", cfg.file.display())))?;
    let mut new = current.clone();
    if !new.ends_with('\n') {
        new.push('\n');
    }
    new += &format!("\n# Imported from {} on {}\n", file.display(), Utc::now().format("%Y-%m-%d"));
    new += &text;
    let base = cfg.file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    Config::parse(&new, &cfg.file, base).map_err(|e| {
        Failure::new(
            EX_CONFIG,
            anyhow::anyhow!("the imported sources would make the config invalid, nothing written: {e}"),
        )
    })?;
    siar::publish::write::write_if_changed(&cfg.file, new.as_bytes())
        .map_err(|e| Failure::new(daemon::EX_CANTCREAT, anyhow::anyhow!("cannot write {}: {e}", cfg.file.display())))?;
    println!(
        "added {} sources to {} ({}); {skipped} already configured or unusable. Check with `siar check`, then restart or reload siar",
        added.len(),
        cfg.file.display(),
        added.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[test]
    fn journal_lines_carry_the_priority_on_every_line() {
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = buf.clone();
        let subscriber =
            tracing_subscriber::fmt().event_format(super::JournalLine).with_writer(move || Sink(sink.clone())).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("reload refused: bad config\n  |\n3 | bogus = 1");
            tracing::info!("ingested a.txt");
        });
        let out = String::from_utf8(buf.lock().expect("lock").clone()).expect("utf-8");
        assert_eq!(out, "<3>reload refused: bad config\n<3>  |\n<3>3 | bogus = 1\n<6>ingested a.txt\n");
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
