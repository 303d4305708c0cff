//! The built-in HTTP/1.1 server: feeds from an in-memory snapshot (see `shelf`), the index page,
//! OPML, health and metrics. hyper does the protocol; this module adds what a public server needs
//! around it: a connection cap, a deadline for request headers, an idle keep-alive limit, a stall
//! limit on writes, and a graceful stop.

pub mod pages;
pub mod respond;
pub mod shelf;
mod zerocopy;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use respond::{Ctx, Health};
pub use shelf::Shelf;

/// Request head limit (request line plus headers).
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// Connections refused with a 503 at once while the server is full (more are just closed).
const OVERFLOW_ANSWERS: usize = 256;
/// How long connections get to finish their request in hand at a stop.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub struct Limits {
    pub header_timeout: Duration,
    pub keep_alive: Duration,
    pub max_connections: usize,
}

/// Binds a listener, saying which key and address failed.
pub async fn bind(addr: SocketAddr, key: &str) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("[server] {key} {addr}: cannot listen: {e}")))
}

/// Accepts connections until `stop`, then lets the ones in hand finish (bounded).
pub async fn run(listener: Arc<TcpListener>, ctx: Arc<Ctx>, limits: Arc<Limits>, stop: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        info!("listening on {addr}{}", if ctx.metrics_only { " (metrics)" } else { "" });
    }
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let overflow = Arc::new(Semaphore::new(OVERFLOW_ANSWERS));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Full: say so at once rather than leave the client hanging in the backlog.
            if let Ok(p) = overflow.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(1), refuse(stream)).await;
                    drop(p);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (ctx, limits, stop, pressure) = (ctx.clone(), limits.clone(), stop.clone(), permits.clone());
        connections.spawn(async move {
            serve_connection(stream, ctx, &limits, pressure, stop).await;
            debug!("connection from {peer} closed");
            drop(permit);
        });
    }
    connections.close();
    let _ = tokio::time::timeout(STOP_GRACE, connections.wait()).await;
}

async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let answer = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\n\
                   Content-Type: text/plain; charset=utf-8\r\nContent-Length: 29\r\n\r\n503: too many connections now\n";
    let _ = stream.write_all(answer).await;
    let _ = stream.shutdown().await;
}

async fn serve_connection(
    stream: TcpStream,
    ctx: Arc<Ctx>,
    limits: &Limits,
    pressure: Arc<Semaphore>,
    stop: CancellationToken,
) {
    let seen = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(Deadlines::new(stream, limits, seen.clone(), pressure));
    let service = service_fn(move |req| {
        seen.store(true, Ordering::Relaxed);
        let ctx = ctx.clone();
        async move { Ok::<_, std::convert::Infallible>(respond::handle(req, ctx).await) }
    });
    let mut builder = http1::Builder::new();
    builder.max_buf_size(MAX_HEAD_BYTES).max_headers(MAX_HEADERS).keep_alive(true).header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!("connection ended: {e}");
            }
        }
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(STOP_GRACE, conn).await;
        }
    }
}

/// A TCP stream with the server's clocks: a request's head must arrive within `header_timeout`
/// of its first byte (or of the connection, for the first request); a connection idle for
/// `keep_alive` after its last response byte is closed (after `header_timeout` while fewer than a
/// tenth of the connection slots are free); a client that stops reading its response for
/// `keep_alive` is dropped. hyper's own header timer would also close idle keep-alive connections
/// after the header timeout, and hyper reads (to notice a close) while it writes a response, so
/// the idle clock must follow the writes.
struct Deadlines {
    inner: TcpStream,
    /// Set by the service when a request head was complete: the connection is idle again after it.
    seen: Arc<AtomicBool>,
    reading_head: bool,
    read_deadline: Pin<Box<Sleep>>,
    write_deadline: Option<Pin<Box<Sleep>>>,
    idle_since: Instant,
    last_write: Instant,
    header_timeout: Duration,
    keep_alive: Duration,
    slots: Arc<Semaphore>,
    max_connections: usize,
}

impl Deadlines {
    fn new(inner: TcpStream, limits: &Limits, seen: Arc<AtomicBool>, slots: Arc<Semaphore>) -> Deadlines {
        Deadlines {
            inner,
            seen,
            reading_head: true,
            read_deadline: Box::pin(tokio::time::sleep(limits.header_timeout)),
            write_deadline: None,
            idle_since: Instant::now(),
            last_write: Instant::now(),
            header_timeout: limits.header_timeout,
            keep_alive: limits.keep_alive,
            slots,
            max_connections: limits.max_connections,
        }
    }

    /// When the idle connection is closed: `keep_alive` after its last activity, shorter when full.
    fn idle_deadline(&self) -> Instant {
        let crowded = self.slots.available_permits() * 10 < self.max_connections;
        let limit = if crowded { self.header_timeout.min(self.keep_alive) } else { self.keep_alive };
        self.idle_since.max(self.last_write) + limit
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

impl AsyncRead for Deadlines {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.seen.swap(false, Ordering::Relaxed) {
            this.reading_head = false;
            this.idle_since = Instant::now();
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && !this.reading_head {
                    this.reading_head = true;
                    let at = Instant::now() + this.header_timeout;
                    this.read_deadline.as_mut().reset(at);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => loop {
                if !this.reading_head {
                    // Look again at least every header_timeout: a server filling up shortens
                    // the idle limit of connections already asleep.
                    let at = this.idle_deadline().min(Instant::now() + this.header_timeout);
                    if this.read_deadline.deadline() != at {
                        this.read_deadline.as_mut().reset(at);
                    }
                }
                ready!(this.read_deadline.as_mut().poll(cx));
                if this.reading_head {
                    return Poll::Ready(Err(timed_out("request headers not received in time")));
                }
                // A response still going out moves the idle clock: look again.
                if this.idle_deadline() <= Instant::now() {
                    return Poll::Ready(Err(timed_out("idle keep-alive connection")));
                }
            },
        }
    }
}

impl Deadlines {
    fn check_write<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => {
                let at = self.last_write + self.keep_alive;
                let sleep = self.write_deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
                ready!(sleep.as_mut().poll(cx));
                Poll::Ready(Err(timed_out("client stopped reading")))
            }
            done => {
                self.last_write = Instant::now();
                done
            }
        }
    }
}

impl Deadlines {
    /// Writes `bufs`, sending any slice that lies in a registered body with sendfile: slices
    /// before it go first (marked MSG_MORE, so the head and the body share packets), then the body.
    fn poll_send(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let found = bufs.iter().enumerate().find_map(|(i, b)| zerocopy::lookup(b.as_ptr(), b.len()).map(|z| (i, z)));
        let Some((i, (file, offset))) = found else {
            let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            return self.check_write(cx, r);
        };
        loop {
            let r = match Pin::new(&mut self.inner).poll_write_ready(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let sock = &self.inner;
                    let sent = self.inner.try_io(tokio::io::Interest::WRITABLE, || {
                        if i > 0 {
                            send_more(sock, &bufs[..i])
                        } else {
                            zerocopy::sendfile(sock, &file, offset, bufs[0].len())
                        }
                    });
                    match sent {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        // A seccomp filter or an odd kernel refusing sendfile: copy from now on.
                        Err(e) if zerocopy::unsupported(&e) => {
                            warn!("sendfile is not available ({e}); sending bodies by copying them");
                            zerocopy::disable();
                            let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
                            return self.check_write(cx, r);
                        }
                        other => Poll::Ready(other),
                    }
                }
            };
            return self.check_write(cx, r);
        }
    }
}

/// sendmsg(2) with MSG_MORE: more (the body) follows at once.
fn send_more(sock: &TcpStream, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: msghdr is plain data; IoSlice is ABI-compatible with iovec on Unix.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    // SAFETY: a valid socket and message; the result is checked.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

impl AsyncWrite for Deadlines {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_send(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
