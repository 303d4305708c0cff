//! The control socket: sled admits one process, so while the daemon holds the store, commands such
//! as `siar list` ask the daemon over a Unix socket in the state directory instead of opening it.
//! Protocol: one request line (`list [LIMIT]`, `sources`, `verify` or `export`), answered with one
//! JSON object per line (an article, a source's status, the verify report, the export's records),
//! or an `error: ` line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::article::Article;
use crate::store::{SourceState, Store};

/// One line of `siar sources`: a source's stored state and how many items it has in the store.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SourceStatus {
    pub name: String,
    pub items: usize,
    pub state: Option<SourceState>,
}

/// The status of every source named, from the store.
pub fn source_statuses(store: &Store, names: &[String]) -> Result<Vec<SourceStatus>, crate::store::Error> {
    names
        .iter()
        .map(|n| Ok(SourceStatus { name: n.clone(), items: store.source_len(n), state: store.source_state(n)? }))
        .collect()
}

pub fn socket_path(state: &Path) -> PathBuf {
    state.join("control.sock")
}

/// Binds the socket. Only called once the store lock is held, so a leftover socket file is ours.
pub fn bind(state: &Path) -> std::io::Result<UnixListener> {
    let path = socket_path(state);
    let _ = std::fs::remove_file(&path);
    UnixListener::bind(&path)
}

/// The configured source names, replaced on a reload.
pub type Names = std::sync::Arc<std::sync::RwLock<Vec<String>>>;

pub async fn run(listener: UnixListener, store: Store, sources: Names, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => { warn!("control socket: {e}"); continue; }
            },
        };
        let store = store.clone();
        // One short request at a time: answering is quick and keeps shutdown simple.
        let names = sources.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Err(e) = answer(stream, store, &names).await {
            debug!("control socket client: {e}");
        }
    }
    if let Ok(addr) = listener.local_addr()
        && let Some(p) = addr.as_pathname()
    {
        let _ = std::fs::remove_file(p);
    }
}

async fn answer(stream: tokio::net::UnixStream, store: Store, sources: &[String]) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read).take(4096);
    tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
        .await
        .map_err(std::io::Error::other)??;
    if line.trim() == "export" {
        // Streamed from a blocking thread: a large store is never held in memory.
        let stream = reader.into_inner().into_inner().reunite(write).map_err(std::io::Error::other)?.into_std()?;
        stream.set_nonblocking(false)?;
        return tokio::task::spawn_blocking(move || {
            // A client that stops reading does not hold the daemon (nor its stop) for long.
            stream.set_write_timeout(Some(Duration::from_secs(60)))?;
            let mut out = std::io::BufWriter::new(&stream);
            let _quiet = store.quiesce();
            if let Err(e) = store.export(&mut out) {
                let _ = writeln!(out, "error: {e}");
            }
            out.flush()
        })
        .await
        .map_err(std::io::Error::other)?;
    }
    let mut words = line.split_whitespace();
    let body = match (words.next(), words.next().map(str::parse::<usize>)) {
        (Some("list"), limit) => {
            let limit = match limit {
                Some(Ok(n)) => n,
                None => usize::MAX,
                Some(Err(_)) => return write.write_all(b"error: list takes a number\n").await,
            };
            let listed = tokio::task::spawn_blocking(move || store.newest(limit, |_| true))
                .await
                .map_err(std::io::Error::other)?;
            ndjson(listed)?
        }
        (Some("sources"), _) => {
            let names = sources.to_vec();
            let listed = tokio::task::spawn_blocking(move || source_statuses(&store, &names))
                .await
                .map_err(std::io::Error::other)?;
            ndjson(listed)?
        }
        (Some("verify"), _) => {
            let report = tokio::task::spawn_blocking(move || {
                let _quiet = store.quiesce();
                store.verify(Some(store.held()))
            })
            .await
            .map_err(std::io::Error::other)?;
            ndjson(Ok(vec![report]))?
        }
        _ => b"error: unknown request; expected: list [LIMIT], sources, verify or export\n".to_vec(),
    };
    write.write_all(&body).await?;
    write.shutdown().await
}

/// One JSON object per line, or the store's error as an `error:` line.
fn ndjson<T: serde::Serialize>(listed: Result<Vec<T>, crate::store::Error>) -> std::io::Result<Vec<u8>> {
    let items = match listed {
        Ok(items) => items,
        Err(e) => return Ok(format!("error: {e}\n").into_bytes()),
    };
    let mut out = Vec::new();
    for item in items {
        serde_json::to_writer(&mut out, &item).map_err(std::io::Error::other)?;
        out.push(b'\n');
    }
    Ok(out)
}

use tokio::io::AsyncReadExt as _;

/// Asks a running daemon for its newest `limit` articles.
pub fn request_list(state: &Path, limit: Option<usize>) -> Result<Vec<Article>, String> {
    let line = match limit {
        Some(n) => format!("list {n}\n"),
        None => "list\n".to_string(),
    };
    request(state, &line)
}

/// Asks a running daemon for the status of its sources.
pub fn request_sources(state: &Path) -> Result<Vec<SourceStatus>, String> {
    request(state, "sources\n")
}

/// Asks a running daemon to verify its store.
pub fn request_verify(state: &Path) -> Result<crate::store::verify::Report, String> {
    request(state, "verify\n")?.pop().ok_or_else(|| "the daemon sent no report".to_string())
}

/// Asks a running daemon for an export of its store, copied to `out` as it comes; the number of
/// articles from its end record.
pub fn request_export(state: &Path, out: &mut impl Write) -> Result<u64, String> {
    let path = socket_path(state);
    let stream = UnixStream::connect(&path)
        .map_err(|e| format!("cannot reach the daemon's control socket {}: {e}", path.display()))?;
    let mut w = &stream;
    w.write_all(b"export\n").map_err(|e| format!("writing to {}: {e}", path.display()))?;
    let mut last = String::new();
    for line in BufReader::new(&stream).lines() {
        let line = line.map_err(|e| format!("reading from {}: {e}", path.display()))?;
        if let Some(err) = line.strip_prefix("error: ") {
            return Err(format!("the daemon answered: {err}"));
        }
        out.write_all(line.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| format!("cannot write the export: {e}"))?;
        last = line;
    }
    let end: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
    match (end["record"].as_str(), end["articles"].as_u64()) {
        (Some("end"), Some(n)) => Ok(n),
        _ => Err("the daemon's export was cut short".to_string()),
    }
}

fn request<T: serde::de::DeserializeOwned>(state: &Path, request: &str) -> Result<Vec<T>, String> {
    let path = socket_path(state);
    let stream = UnixStream::connect(&path)
        .map_err(|e| format!("cannot reach the daemon's control socket {}: {e}", path.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let mut w = &stream;
    w.write_all(request.as_bytes()).map_err(|e| format!("writing to {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for line in BufReader::new(&stream).lines() {
        let line = line.map_err(|e| format!("reading from {}: {e}", path.display()))?;
        if let Some(err) = line.strip_prefix("error: ") {
            return Err(format!("the daemon answered: {err}"));
        }
        out.push(serde_json::from_str(&line).map_err(|e| format!("the daemon sent an unreadable line: {e}"))?);
    }
    Ok(out)
}
