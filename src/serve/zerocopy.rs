//! sendfile(2) for served documents. Copying a 200 KB body into the socket took 40% of the
//! server's CPU under load (a static server avoids it with sendfile). Each large body is also
//! written once into a private memfd, and its address range is registered here; when hyper asks
//! the connection to write a slice lying inside a registered body, the connection sends those
//! bytes from the memfd with sendfile instead of copying them (see `Deadlines` in the parent).
//!
//! Safety of the address lookup: a range is registered by the `Doc` that owns the `Bytes` and
//! removed when that `Doc` is dropped, so a registered range is always allocated memory holding
//! exactly the memfd's bytes; a response still sending from a dropped `Doc`'s bytes simply finds
//! no range and falls back to an ordinary write.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// Bodies smaller than this are written the ordinary way.
pub const MIN_BYTES: usize = 16 * 1024;

type Ranges = BTreeMap<usize, (usize, Arc<OwnedFd>)>;

fn ranges() -> &'static RwLock<Ranges> {
    static RANGES: std::sync::OnceLock<RwLock<Ranges>> = std::sync::OnceLock::new();
    RANGES.get_or_init(Default::default)
}

/// A body registered for sendfile; unregisters itself when dropped.
pub struct Registered {
    start: usize,
}

impl Drop for Registered {
    fn drop(&mut self) {
        ranges().write().unwrap_or_else(PoisonError::into_inner).remove(&self.start);
    }
}

/// Copies `bytes` into a memfd and registers their address range. `None` when small, or when
/// memfds are unavailable (then bodies are written the ordinary way).
pub fn register(bytes: &[u8]) -> Option<Registered> {
    if bytes.len() < MIN_BYTES {
        return None;
    }
    // SAFETY: a NUL-terminated name and valid flags; the result is checked.
    let fd = unsafe { libc::memfd_create(c"siar-doc".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a fresh descriptor owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = File::from(fd);
    file.write_all(bytes).ok()?;
    let start = bytes.as_ptr() as usize;
    let fd = Arc::new(OwnedFd::from(file));
    ranges().write().unwrap_or_else(PoisonError::into_inner).insert(start, (bytes.len(), fd));
    Some(Registered { start })
}

static DISABLED: AtomicBool = AtomicBool::new(false);

/// sendfile failed in a way that will not go away (seccomp, kernel): stop using it.
pub fn disable() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// Errors that mean sendfile cannot be used here at all (not a closed or slow socket).
pub fn unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP))
}

/// The memfd and offset holding the bytes at `ptr..ptr + len`, when they lie in a registered body.
pub fn lookup(ptr: *const u8, len: usize) -> Option<(Arc<OwnedFd>, usize)> {
    if DISABLED.load(Ordering::Relaxed) {
        return None;
    }
    let at = ptr as usize;
    let map = ranges().read().unwrap_or_else(PoisonError::into_inner);
    let (&start, (size, fd)) = map.range(..=at).next_back()?;
    let offset = at - start;
    (offset + len <= *size && len > 0).then(|| (fd.clone(), offset))
}

/// One sendfile(2) call: up to `len` bytes from `file` at `offset` to `socket`.
pub fn sendfile(socket: &impl AsRawFd, file: &OwnedFd, offset: usize, len: usize) -> std::io::Result<usize> {
    let mut off = offset as libc::off_t;
    // SAFETY: valid descriptors and a valid offset pointer; the result is checked.
    let n = unsafe { libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut off, len) };
    if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_found_inside_registered_bodies_only() {
        let body = vec![7u8; MIN_BYTES * 2];
        let reg = register(&body).expect("memfd");
        let (_, off) = lookup(body[100..].as_ptr(), 50).expect("inside");
        assert_eq!(off, 100);
        assert!(lookup(body[100..].as_ptr(), body.len()).is_none(), "past the end");
        assert!(register(&body[..10]).is_none(), "small bodies are not registered");
        drop(reg);
        assert!(lookup(body.as_ptr(), 10).is_none(), "gone with its owner");
    }
}
