//! The systemd notify protocol (sd_notify(3)) without libsystemd: datagrams such as `READY=1`,
//! `STATUS=…`, `WATCHDOG=1` and `STOPPING=1` to the socket named by `$NOTIFY_SOCKET` (a path, or
//! `@name` for an abstract socket). Without that variable (not under systemd) every call does
//! nothing.

use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;
use std::time::Duration;

use tracing::debug;

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
