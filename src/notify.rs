//! The systemd notify protocol (sd_notify(3)) without libsystemd: datagrams such as `READY=1`,
//! `STATUS=…`, `WATCHDOG=1` and `STOPPING=1` to the socket named by `$NOTIFY_SOCKET` (a path, or
//! `@name` for an abstract socket). Without that variable (not under systemd) every call does
//! nothing.

use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

struct Target {
    socket: UnixDatagram,
    addr: std::os::unix::net::SocketAddr,
}

fn target() -> Option<&'static Target> {
    static TARGET: OnceLock<Option<Target>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let name = std::env::var_os("NOTIFY_SOCKET")?;
            let bytes = std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str());
            let addr = match bytes.strip_prefix(b"@") {
                Some(abstract_name) => {
                    use std::os::linux::net::SocketAddrExt;
                    std::os::unix::net::SocketAddr::from_abstract_name(abstract_name).ok()?
                }
                None => std::os::unix::net::SocketAddr::from_pathname(std::path::Path::new(&name)).ok()?,
            };
            let socket = UnixDatagram::unbound().ok()?;
            // Never wait on the listener: a full queue drops the message (logged at debug level)
            // instead of stalling the publish loop that sends it.
            socket.set_nonblocking(true).ok()?;
            Some(Target { socket, addr })
        })
        .as_ref()
}

/// Sends one notification (several `KEY=value` lines may be joined with `\n`).
pub fn send(state: &str) {
    if let Some(t) = target()
        && let Err(e) = t.socket.send_to_addr(state.as_bytes(), &t.addr)
    {
        debug!("cannot notify systemd ({state}): {e}");
    }
}

/// A one-line status for `systemctl status` (newlines would end it). The text is only made
/// under systemd: a summary can cost a store scan.
pub fn status(text: impl FnOnce() -> String) {
    if target().is_some() {
        send(&format!("STATUS={}", text().replace('\n', " ")));
    }
}

/// `WATCHDOG=1` from the publish loop (the scheduler), unless the ingest loop is stuck: a pass
/// that has made no progress for half the watchdog period stops the pings too, so systemd
/// restarts a daemon wedged in either loop.
pub fn keepalive() {
    let Some(period) = watchdog() else { return };
    static WARNED: AtomicBool = AtomicBool::new(false);
    match INGEST.stalled(period / 2) {
        Some(for_how_long) => {
            if !WARNED.swap(true, Ordering::Relaxed) {
                warn!(
                    "the ingest loop has made no progress for {}s (a file read or the store hangs); \
                     the watchdog is no longer pinged",
                    for_how_long.as_secs()
                );
            }
        }
        None => {
            if WARNED.swap(false, Ordering::Relaxed) {
                info!("the ingest loop moves again; pinging the watchdog");
            }
            send("WATCHDOG=1");
        }
    }
}

/// `keepalive` from inside a long piece of work that is moving (a publish paging a long archive,
/// page by page), at most every half watchdog period (and at most once a second).
pub fn progress() {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let Some(period) = watchdog() else { return };
    let every = (period / 2).min(Duration::from_secs(1)).as_millis() as u64;
    let now = now_ms();
    if now.saturating_sub(LAST.load(Ordering::Relaxed)) >= every {
        LAST.store(now, Ordering::Relaxed);
        keepalive();
    }
}

/// The ingest loop's heartbeat, read by `keepalive`.
pub static INGEST: Beat = Beat { state: AtomicU64::new(0) };

/// Progress of a loop in one word (read as a whole, never half updated): 0 while it waits for
/// work, else 1 + the time of its last step (ms since siar started).
pub struct Beat {
    state: AtomicU64,
}

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Beat {
    /// Work under way, and moving: call at its start and at every step.
    pub fn beat(&self) {
        self.state.store(now_ms() + 1, Ordering::Release);
    }

    /// The work is done; waiting for more is not being stuck.
    pub fn idle(&self) {
        self.state.store(0, Ordering::Release);
    }

    /// How long busy work has not moved, when that is longer than `limit`.
    fn stalled(&self, limit: Duration) -> Option<Duration> {
        let last = self.state.load(Ordering::Acquire).checked_sub(1)?;
        let since = Duration::from_millis(now_ms().saturating_sub(last));
        (since > limit).then_some(since)
    }
}

/// The watchdog interval systemd expects pings within (`$WATCHDOG_USEC`, for this process).
pub fn watchdog() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0 && target().is_some()).then(|| Duration::from_micros(usec))
}
