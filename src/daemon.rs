//! Wiring only: prepare directories, open the store, spawn the tasks, wait for SIGTERM/SIGINT,
//! stop in order (tasks finish the item in hand, then the store is flushed).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::store::Store;
use crate::{control, fetch, ingest, notify, publish, serve, websub};

/// How long tasks get to finish the item in hand after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

pub use crate::exit::{EX_CANTCREAT, EX_CONFIG, EX_DATAERR, EX_NOINPUT, EX_SOFTWARE, EX_TEMPFAIL, Failure};

/// What `check` reports about a configured directory.
pub enum DirState {
    Ready,
    Missing,
}

/// A configured directory must be a writable directory, or not exist yet (then it is created).
pub fn check_dir(key: &str, path: &Path) -> Result<DirState, Failure> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => match writable(path) {
            Ok(()) => Ok(DirState::Ready),
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => Err(Failure::new(
                EX_CANTCREAT,
                anyhow::anyhow!(
                    "[paths] {key}: {} is on a read-only file system; {}",
                    path.display(),
                    read_only_hint()
                ),
            )),
            Err(e) => Err(Failure::new(
                EX_CANTCREAT,
                anyhow::anyhow!(
                    "[paths] {key}: {} is not writable by this user ({e}); fix its owner or mode",
                    path.display()
                ),
            )),
        },
        Ok(_) => Err(Failure::new(
            EX_CONFIG,
            anyhow::anyhow!(
                "[paths] {key}: {} exists but is not a directory; point {key} at a directory",
                path.display()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DirState::Missing),
        Err(e) => {
            Err(Failure::new(EX_CANTCREAT, anyhow::anyhow!("[paths] {key}: cannot inspect {}: {e}", path.display())))
        }
    }
}

/// What to do about a read-only directory: under systemd the unit's sandbox decides, not the mount.
fn read_only_hint() -> &'static str {
    if std::env::var_os("INVOCATION_ID").is_some() {
        "under systemd only /var/lib/siar and /var/spool/siar are writable (ProtectSystem=strict): add the \
         directory to ReadWritePaths= (systemctl edit siar), or mount it read-write"
    } else {
        "mount it read-write"
    }
}

fn writable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Checks the config's directories in file terms, creating missing ones (logged).
pub fn prepare_dirs(cfg: &Config) -> Result<(), Failure> {
    let dirs = [("drop", &cfg.paths.drop), ("state", &cfg.paths.state), ("output", &cfg.paths.output)];
    for (key, path) in dirs {
        if let DirState::Missing = check_dir(key, path)? {
            std::fs::create_dir_all(path).map_err(|e| {
                let hint = if e.raw_os_error() == Some(libc::EROFS) { read_only_hint() } else { "create it" };
                Failure::new(
                    EX_CANTCREAT,
                    anyhow::anyhow!("[paths] {key}: cannot create {}: {e}; {hint}", path.display()),
                )
            })?;
            info!("created the {key} directory {}", path.display());
        }
    }
    for sub in [ingest::dropfolder::DONE, ingest::dropfolder::FAILED] {
        let p = cfg.paths.drop.join(sub);
        if p.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            return Err(Failure::new(
                EX_CANTCREAT,
                anyhow::anyhow!(
                    "[paths] drop: {} is a file, but siar keeps processed files in a directory of that name; rename the file",
                    p.display()
                ),
            ));
        }
        std::fs::create_dir_all(&p)
            .with_context(|| format!("[paths] drop: cannot create {}", p.display()))
            .map_err(|e| Failure::new(EX_CANTCREAT, e))?;
    }
    Ok(())
}

/// `siar run`: the daemon; with `once`, one full pass (ingest everything, publish every feed).
pub async fn run(cfg: Config, once: bool) -> Result<(), Failure> {
    prepare_dirs(&cfg)?;
    let store = crate::recover::open_store(&cfg)?;
    let stale = publish::write::remove_stale_temps(&cfg.paths.output);
    if stale > 0 {
        info!("removed {stale} temp files a crash left in {}", cfg.paths.output.display());
    }
    let cfg = Arc::new(cfg);
    let stop = CancellationToken::new();

    if once {
        let signals = tokio::spawn(stop_on_signal(stop.clone()));
        if cfg.sources.iter().any(|s| s.enabled) {
            let fetcher = fetch::Fetcher::new(cfg.clone(), store.clone())
                .map_err(|e| Failure::new(EX_SOFTWARE, anyhow::anyhow!(e)))?;
            let reports = Arc::new(fetcher).poll_all(&stop).await;
            let failed = reports.iter().filter(|r| !r.ok).count();
            let new: usize = reports.iter().map(|r| r.new + r.updated).sum();
            info!("polled {} sources: {failed} failed, {new} new or changed items", reports.len());
        }
        let (c, s, t) = (cfg.clone(), store.clone(), stop.clone());
        let report = tokio::task::spawn_blocking(move || -> Result<_, Failure> {
            let ingested = ingest::drain(&c, &s, &t)?;
            let published = publish::Publisher::default().publish_all(&c, &s)?;
            s.flush()?;
            Ok((ingested, published))
        })
        .await
        .map_err(|e| Failure::new(EX_SOFTWARE, anyhow::anyhow!("the pass panicked: {e}")))??;
        signals.abort();
        tokio::task::spawn_blocking(move || store.close()).await.map_err(|e| Failure::new(EX_SOFTWARE, e))??;
        let (i, p) = report;
        info!(
            "pass done: {} stored, {} unchanged, {} rejected; {} files written, {} unchanged, {} failed",
            i.stored, i.unchanged, i.rejected, p.written, p.unchanged, p.failed
        );
        return Ok(());
    }

    let listener = control::bind(&cfg.paths.state)
        .with_context(|| format!("cannot bind the control socket {}", control::socket_path(&cfg.paths.state).display()))
        .map_err(|e| Failure::new(EX_TEMPFAIL, e))?;
    // Signal handlers first: from here SIGHUP reloads (its default would end the process) and no
    // SIGTERM is lost between two waits.
    let sig = |kind| {
        signal(kind).map_err(|e| Failure::new(EX_SOFTWARE, anyhow::anyhow!("cannot install signal handlers: {e}")))
    };
    let (mut term, mut int, mut hup) =
        (sig(SignalKind::terminate())?, sig(SignalKind::interrupt())?, sig(SignalKind::hangup())?);
    let tasks = TaskTracker::new();
    let health = Arc::new(std::sync::RwLock::new(health_of(&cfg, &store)));
    let mut serving = None;
    raise_open_files_limit();
    if let Some(server) = &cfg.server {
        serving = Some(spawn_server(&tasks, server, &cfg, None, health.clone(), &stop).await?);
    }
    let shelf = |serving: &Option<Serving>| serving.as_ref().map(|s| s.shelf.clone());
    let scanned = Arc::new(Notify::new());
    let mut generation = spawn_generation(&cfg, &store, shelf(&serving), scanned.clone(), &stop);
    let names: control::Names = Arc::new(std::sync::RwLock::new(cfg.sources.iter().map(|s| s.name.clone()).collect()));
    tasks.spawn(control::run(listener, store.clone(), names.clone(), stop.clone()));
    tasks.close();
    info!(
        "siar {} running: drop folder {}, store {}, output {}, {} feeds, {} sources, schedule {:?}",
        env!("CARGO_PKG_VERSION"),
        cfg.paths.drop.display(),
        cfg.paths.state.display(),
        cfg.paths.output.display(),
        cfg.feeds.len(),
        cfg.sources.iter().filter(|s| s.enabled).count(),
        cfg.publish.schedule.text()
    );

    // READY=1 once the config is valid, the store open, the listeners bound and the drop folder
    // listed once (systemd's Type=notify; nothing happens without $NOTIFY_SOCKET).
    tokio::select! {
        () = scanned.notified() => {
            notify::send("READY=1");
            notify::status(|| publish::status_line(&cfg, &store));
        }
        _ = term.recv() => stop.cancel(),
        _ = int.recv() => stop.cancel(),
        // A task that fails (the store) cancels its generation: the daemon stops with it.
        () = generation.token.cancelled() => stop.cancel(),
        () = stop.cancelled() => {}
    }
    let mut cfg = cfg;
    while !stop.is_cancelled() {
        tokio::select! {
            _ = term.recv() => {
                info!("stopping: finishing the work in hand");
                break;
            }
            _ = int.recv() => {
                info!("stopping: finishing the work in hand");
                break;
            }
            () = stop.cancelled() => break,
            // Only a failing task cancels a generation (a reload replaces it in its own branch).
            () = generation.token.cancelled() => break,
            _ = hup.recv() => {
                notify::send("RELOADING=1");
                let reloaded = match reload(&cfg).await {
                    // The server first: a listener that cannot be bound refuses the whole reload.
                    Ok(new) if new.server != cfg.server => match &new.server {
                        Some(server) => spawn_server(&tasks, server, &new, serving.as_ref(), health.clone(), &stop)
                            .await
                            .map(|s| (new.clone(), Some(Some(s))))
                            .map_err(|f| format!("{:#}", f.error)),
                        None => Ok((new, Some(None))),
                    },
                    Ok(new) => Ok((new, None)),
                    Err(why) => Err(why),
                };
                match reloaded {
                    Ok((new, next_serving)) => {
                        if let Some(next) = next_serving {
                            // The old listeners stop accepting; their connections finish the request in hand.
                            if let Some(old) = std::mem::replace(&mut serving, next) {
                                old.token.cancel();
                            }
                        }
                        // The old generation finishes the file or poll in hand; then the new one starts.
                        generation.token.cancel();
                        let _ = tokio::time::timeout(SHUTDOWN_GRACE, generation.tasks.wait()).await;
                        if let Some(s) = shelf(&serving) {
                            s.update(&new, Vec::new(), &Default::default());
                        }
                        *health.write().unwrap_or_else(std::sync::PoisonError::into_inner) = health_of(&new, &store);
                        *names.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
                            new.sources.iter().map(|s| s.name.clone()).collect();
                        generation = spawn_generation(&new, &store, shelf(&serving), Arc::new(Notify::new()), &stop);
                        info!(
                            "reloaded {}: {} feeds, {} sources, schedule {:?}",
                            new.file.display(),
                            new.feeds.len(),
                            new.sources.iter().filter(|s| s.enabled).count(),
                            new.publish.schedule.text()
                        );
                        cfg = new;
                        notify::status(|| publish::status_line(&cfg, &store));
                    }
                    Err(why) => {
                        error!("reload refused, still running on the previous config: {why}");
                        notify::status(|| format!("reload refused, running on the previous config: {why}"));
                    }
                }
                notify::send("READY=1");
            }
        }
    }
    notify::send("STOPPING=1");
    stop.cancel();
    tokio::select! {
        r = tokio::time::timeout(SHUTDOWN_GRACE, async { tasks.wait().await; generation.tasks.wait().await }) => {
            if r.is_err() {
                warn!("tasks outlived the {SHUTDOWN_GRACE:?} grace period");
            }
        }
        _ = term.recv() => warn!("second signal: stopping at once"),
        _ = int.recv() => warn!("second signal: stopping at once"),
    }
    if generation.ingest.is_finished()
        && let Ok(Err(e)) = generation.ingest.await
    {
        return Err(e.into());
    }
    drop((serving, health));
    tokio::task::spawn_blocking(move || store.close()).await.map_err(|e| Failure::new(EX_SOFTWARE, e))??;
    info!("stopped; store flushed");
    Ok(())
}

/// Raises the soft open-files limit to the hard one (the usual soft limit, 1024, is below the
/// server's connection limit). Refused under a seccomp filter that denies setrlimit: then the
/// unit's LimitNOFILE decides.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
        }
    }
}

/// The soft open-files limit in force (unknown: unlimited).
fn open_files_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit with a valid rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 { lim.rlim_cur } else { u64::MAX }
}

/// What `/readyz` and `/metrics` read, from one config.
fn health_of(cfg: &Config, store: &Store) -> Arc<serve::Health> {
    Arc::new(serve::Health {
        store: store.clone(),
        drop: cfg.paths.drop.clone(),
        schedule: cfg.publish.schedule.clone(),
        sources: cfg.sources.iter().map(|s| s.name.clone()).collect(),
        keyed: cfg.feeds.iter().filter(|f| f.access != crate::config::Access::Public).map(|f| f.name.clone()).collect(),
    })
}

/// The tasks that follow the config: replaced as a whole by a reload.
struct Generation {
    token: CancellationToken,
    tasks: TaskTracker,
    ingest: tokio::task::JoinHandle<Result<(), crate::store::Error>>,
}

fn spawn_generation(
    cfg: &Arc<Config>,
    store: &Store,
    shelf: Option<Arc<serve::Shelf>>,
    scanned: Arc<Notify>,
    stop: &CancellationToken,
) -> Generation {
    let token = stop.child_token();
    let tasks = TaskTracker::new();
    let changed = Arc::new(Notify::new());
    let mut outlets = publish::Outlets { shelf, websub: None };
    if !cfg.hubs.is_empty() {
        let (tx, rx) = websub::channel();
        outlets.websub = Some(tx);
        tasks.spawn(websub::run(cfg.hubs.clone(), rx, cfg.fetch.user_agent.clone(), token.clone()));
    }
    let ingest = tasks.spawn(ingest::run(cfg.clone(), store.clone(), changed.clone(), scanned, token.clone()));
    tasks.spawn(fetch::run(cfg.clone(), store.clone(), changed.clone(), token.clone()));
    tasks.spawn(publish::run(cfg.clone(), store.clone(), changed, outlets, token.clone()));
    tasks.close();
    Generation { token, tasks, ingest }
}

/// What a reload cannot change without a restart (the store is open).
fn needs_restart(old: &Config, new: &Config) -> Option<&'static str> {
    (old.paths.state != new.paths.state).then_some("[paths] state")
}

/// The running server: its settings, its listeners (kept by a reload that leaves their address
/// alone, so no connection is refused) and the token that stops it.
struct Serving {
    server: crate::config::Server,
    listen: Arc<tokio::net::TcpListener>,
    metrics: Option<Arc<tokio::net::TcpListener>>,
    shelf: Arc<serve::Shelf>,
    token: CancellationToken,
}

/// Binds the server's listeners (a busy port is EX_TEMPFAIL) and spawns them; `old`, a server
/// being replaced by a reload, lends its listeners whose address stays and its shelf.
async fn spawn_server(
    tasks: &TaskTracker,
    server: &crate::config::Server,
    cfg: &Config,
    old: Option<&Serving>,
    health: Arc<std::sync::RwLock<Arc<serve::Health>>>,
    stop: &CancellationToken,
) -> Result<Serving, Failure> {
    let files = open_files_limit();
    if (files as usize) < server.max_connections + 256 {
        warn!(
            "[server] max_connections {} is near or above the open-files limit {files}: raise LimitNOFILE \
             (ulimit -n) or lower max_connections",
            server.max_connections
        );
    }
    // A new address is bound while the old listener still holds its own: on the same port (another
    // address of it, or the other listener's) that cannot work while siar runs.
    let bind = |addr: std::net::SocketAddr, key: &'static str| async move {
        serve::bind(addr, key).await.map_err(|e| {
            let own = old.map(|o| [Some(o.server.listen), o.server.metrics_listen]).into_iter().flatten().flatten();
            let clash = own.into_iter().find(|a| a.port() == addr.port() && addr.port() != 0);
            match clash {
                Some(a) if e.kind() == std::io::ErrorKind::AddrInUse => Failure::new(
                    EX_TEMPFAIL,
                    anyhow::anyhow!(
                        "[server] {key} {addr}: the port is held by siar's own listener on {a}; moving between \
                         addresses of one port needs a restart (systemctl restart siar)"
                    ),
                ),
                _ => Failure::new(EX_TEMPFAIL, e),
            }
        })
    };
    let listen = match old.filter(|o| o.server.listen == server.listen) {
        Some(o) => o.listen.clone(),
        None => Arc::new(bind(server.listen, "listen").await?),
    };
    let metrics = match server.metrics_listen {
        None => None,
        Some(addr) => {
            Some(match old.filter(|o| o.server.metrics_listen == Some(addr)).and_then(|o| o.metrics.clone()) {
                Some(l) => l,
                None => Arc::new(bind(addr, "metrics_listen").await?),
            })
        }
    };
    let shelf = match old {
        Some(o) => o.shelf.clone(),
        None => {
            let s = Arc::new(serve::Shelf::default());
            // Every configured feed answers 503 + Retry-After (not 404) until its first publish.
            s.update(cfg, Vec::new(), &Default::default());
            s
        }
    };
    let token = stop.child_token();
    let max_age = server.cache_max_age.as_secs();
    let ctx = |metrics: bool, metrics_only: bool| {
        Arc::new(serve::Ctx {
            shelf: shelf.clone(),
            base_path: server.base_path.clone(),
            cache_control: hyper::header::HeaderValue::from_str(&format!("public, max-age={max_age}"))
                .unwrap_or(hyper::header::HeaderValue::from_static("no-cache")),
            keyed_cache_control: hyper::header::HeaderValue::from_str(&format!("private, max-age={max_age}"))
                .unwrap_or(hyper::header::HeaderValue::from_static("no-cache")),
            metrics,
            metrics_only,
            health: health.clone(),
            output: cfg.paths.output.clone(),
            archive_cache: Default::default(),
        })
    };
    let limits = Arc::new(serve::Limits {
        header_timeout: server.header_timeout,
        keep_alive: server.keep_alive,
        max_connections: server.max_connections,
    });
    tasks.spawn(serve::run(listen.clone(), ctx(server.metrics_listen.is_none(), false), limits.clone(), token.clone()));
    if let Some(listener) = &metrics {
        tasks.spawn(serve::run(listener.clone(), ctx(true, true), limits, token.clone()));
    }
    Ok(Serving { server: server.clone(), listen, metrics, shelf, token })
}

/// Reads the config again for SIGHUP: the new one, or why it cannot be applied.
async fn reload(old: &Arc<Config>) -> Result<Arc<Config>, String> {
    let path = old.file.clone();
    let new = tokio::task::spawn_blocking(move || Config::load(&path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if let Some(what) = needs_restart(old, &new) {
        return Err(format!("{}: {what} changed; that needs a restart (systemctl restart siar)", new.file.display()));
    }
    prepare_dirs(&new).map_err(|f| format!("{:#}", f.error))?;
    Ok(Arc::new(new))
}

async fn wait_for_signal() {
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            error!("cannot install signal handlers; stop siar with SIGKILL");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

async fn stop_on_signal(stop: CancellationToken) {
    wait_for_signal().await;
    info!("stopping after the file in hand");
    stop.cancel();
}
