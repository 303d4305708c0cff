//! Request -> response. Paths are matched as raw text against the few names siar serves: nothing
//! from a request ever becomes a file path (archive pages are named by number only), so `..`,
//! encoded slashes and friends simply match nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::shelf::{Doc, Encoding, Shelf, ext_index};
use crate::config::Access;
use crate::schedule::Schedule;
use crate::store::Store;

pub type Body = Full<Bytes>;

/// Everything a request may need; one per listener.
pub struct Ctx {
    pub shelf: Arc<Shelf>,
    pub base_path: String,
    pub cache_control: HeaderValue,
    pub keyed_cache_control: HeaderValue,
    /// `/metrics` is answered here (false when `metrics_listen` moves it elsewhere).
    pub metrics: bool,
    /// Only `/metrics` (the `metrics_listen` listener).
    pub metrics_only: bool,
    /// Replaced when the config is reloaded (SIGHUP).
    pub health: Arc<std::sync::RwLock<Arc<Health>>>,
    /// The output directory (archive pages are read from it).
    pub output: PathBuf,
    /// Archive pages read and compressed recently: path -> (mtime, length, document).
    pub archive_cache: std::sync::Mutex<ArchiveCache>,
}

pub type ArchiveCache = HashMap<PathBuf, (SystemTime, u64, Arc<Doc>)>;

/// Archive pages kept compressed in memory (a full cache drops an arbitrary entry).
const ARCHIVE_CACHE: usize = 32;

/// What `/readyz` and `/metrics` read.
pub struct Health {
    pub store: Store,
    pub drop: PathBuf,
    pub schedule: Schedule,
    pub sources: Vec<String>,
    /// Keyed feeds: left out of `/metrics` on the public listener.
    pub keyed: Vec<String>,
}

enum Route<'a> {
    Index,
    Opml,
    Healthz,
    Readyz,
    Metrics,
    Feed(&'a str, usize),
    Archive(&'a str, u32, usize),
}

fn route<'a>(path: &'a str, ctx: &Ctx) -> Option<Route<'a>> {
    // `/prefix` (without the slash) is the index too.
    let rest = path
        .strip_prefix(ctx.base_path.as_str())
        .or_else(|| (path == ctx.base_path.trim_end_matches('/')).then_some(""))?;
    if ctx.metrics_only {
        return (rest == "metrics").then_some(Route::Metrics);
    }
    match rest {
        "" | "index.html" => Some(Route::Index),
        "feeds.opml" => Some(Route::Opml),
        "healthz" => Some(Route::Healthz),
        "readyz" => Some(Route::Readyz),
        "metrics" if ctx.metrics => Some(Route::Metrics),
        _ => {
            let file = rest.strip_prefix("feeds/")?;
            let (stem, ext) = file.rsplit_once('.')?;
            let ext = ext_index(ext)?;
            if let Some((name, page)) = stem.split_once("/archive/") {
                let digits_ok = !page.is_empty() && !page.starts_with('0') && page.bytes().all(|b| b.is_ascii_digit());
                return (crate::config::is_feed_name(name) && digits_ok)
                    .then(|| page.parse().ok().map(|n| Route::Archive(name, n, ext)))
                    .flatten();
            }
            crate::config::is_feed_name(stem).then_some(Route::Feed(stem, ext))
        }
    }
}

pub async fn handle<B>(req: Request<B>, ctx: Arc<Ctx>) -> Response<Body> {
    let path = req.uri().path();
    let Some(route) = route(path, &ctx) else {
        return not_found("other");
    };
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is malformed.
    // So is a target that is not a path (authority form on a GET), and so are two Hosts.
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if (req.version() == hyper::Version::HTTP_11 && hosts != 1) || hosts > 1 || !req.uri().path().starts_with('/') {
        crate::metrics::get().request("other", 400);
        return text(StatusCode::BAD_REQUEST, "400 Bad Request: HTTP/1.1 needs one Host header and a path\n");
    }
    let head = req.method() == Method::HEAD;
    if !head && req.method() != Method::GET {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed: only GET and HEAD\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        crate::metrics::get().request("other", 405);
        return r;
    }
    let snapshot = ctx.shelf.snapshot();
    let response = match route {
        Route::Index => static_doc(snapshot.index.as_deref(), "index", &req, &ctx),
        Route::Opml => static_doc(snapshot.opml.as_deref(), "opml", &req, &ctx),
        Route::Healthz => {
            crate::metrics::get().request("healthz", 200);
            json(StatusCode::OK, "{\"status\":\"ok\"}\n".into())
        }
        Route::Readyz => {
            let health = ctx.health.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            let verdict =
                tokio::task::spawn_blocking(move || health.ready()).await.unwrap_or_else(|e| Err(e.to_string()));
            let (status, body) = match verdict {
                Ok(()) => (StatusCode::OK, "{\"status\":\"ready\"}\n".to_string()),
                Err(why) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{}\n", serde_json::json!({"status": "not ready", "reason": why})),
                ),
            };
            crate::metrics::get().request("readyz", status.as_u16());
            json(status, body)
        }
        Route::Metrics => {
            let health = ctx.health.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            let private = ctx.metrics_only;
            let body = tokio::task::spawn_blocking(move || health.metrics(private)).await.unwrap_or_default();
            crate::metrics::get().request("metrics", 200);
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Route::Feed(name, i) => feed(&snapshot, name, i, &req, &ctx),
        Route::Archive(name, n, i) => archive(&snapshot, name, n, i, &req, &ctx).await,
    };
    if head { strip_body(response) } else { response }
}

fn feed<B>(snapshot: &super::shelf::Snapshot, name: &str, i: usize, req: &Request<B>, ctx: &Ctx) -> Response<Body> {
    let Some(entry) = snapshot.feeds.get(name) else {
        return not_found("other");
    };
    let cache_control = match &entry.access {
        Access::Public => &ctx.cache_control,
        Access::Key(hashes) => {
            let Some(which) = presented_key(req).and_then(|k| crate::access::check(&k, hashes)) else {
                entry.counters.unauthorized.fetch_add(1, Relaxed);
                let mut r = text(StatusCode::UNAUTHORIZED, "401 Unauthorized: this address needs a valid key\n");
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"siar\""));
                r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return r;
            };
            entry.counters.key_used(&crate::access::label(&hashes[which]));
            &ctx.keyed_cache_control
        }
    };
    let Some(doc) = entry.docs[i].as_deref() else {
        crate::metrics::get().request("other", 503);
        let mut r =
            text(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable: not published yet, try again shortly\n");
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    };
    let mut r = representation(doc, req.headers(), cache_control);
    if r.status() == StatusCode::NOT_MODIFIED {
        entry.counters.not_modified.fetch_add(1, Relaxed);
    } else {
        entry.counters.ok.fetch_add(1, Relaxed);
        let sent =
            if req.method() == Method::HEAD { 0 } else { hyper::body::Body::size_hint(r.body()).exact().unwrap_or(0) };
        entry.counters.bytes.fetch_add(sent, Relaxed);
    }
    if matches!(entry.access, Access::Key(_)) {
        r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept-Encoding, Authorization"));
    }
    if let Some(link) = &entry.links[i] {
        r.headers_mut().insert(header::LINK, link.clone());
    }
    r
}

/// An archive page: public feeds only, numbers that exist only, read from the output directory
/// without following symlinks. Every page but the newest is final: cacheable for a year.
async fn archive<B>(
    snapshot: &super::shelf::Snapshot,
    name: &str,
    n: u32,
    i: usize,
    req: &Request<B>,
    ctx: &Arc<Ctx>,
) -> Response<Body> {
    let Some(entry) =
        snapshot.feeds.get(name).filter(|e| e.access == Access::Public && (1..=e.archive_pages).contains(&n))
    else {
        return not_found("archive");
    };
    let ext = crate::publish::FORMATS[i];
    let dir = ctx.output.join(name);
    let path = dir.join("archive").join(format!("{n}.{ext}"));
    let c = ctx.clone();
    let loaded = tokio::task::spawn_blocking(move || load_archive(&c, &dir, &path, ext)).await;
    let Ok(Ok(doc)) = loaded else {
        return not_found("archive");
    };
    let forever = HeaderValue::from_static("public, max-age=31536000, immutable");
    let cache_control = if n < entry.archive_pages { &forever } else { &ctx.cache_control };
    let r = representation(&doc, req.headers(), cache_control);
    crate::metrics::get().request("archive", r.status().as_u16());
    r
}

fn load_archive(ctx: &Ctx, dir: &std::path::Path, path: &std::path::Path, ext: &str) -> std::io::Result<Arc<Doc>> {
    use std::os::unix::fs::OpenOptionsExt;
    for d in [dir.to_path_buf(), dir.join("archive")] {
        if !std::fs::symlink_metadata(&d)?.is_dir() {
            return Err(std::io::Error::other("not a directory"));
        }
    }
    let open = |p: &std::path::Path| -> std::io::Result<(std::fs::File, std::fs::Metadata)> {
        let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(p)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::other("not a file"));
        }
        Ok((file, meta))
    };
    let (mut file, meta) = open(path)?;
    let modified = meta.modified()?;
    let cache = ctx.archive_cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((m, len, doc)) = cache.get(path)
        && *m == modified
        && *len == meta.len()
    {
        return Ok(doc.clone());
    }
    drop(cache);
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::io::Read::read_to_end(&mut file, &mut bytes)?;
    // The gzip form written beside the page, when it is there and not older than the page.
    let gz = open(&path.with_extension(format!("{ext}.gz"))).ok().and_then(|(mut f, m)| {
        let mut z = Vec::with_capacity(m.len() as usize);
        let fresh = m.modified().is_ok_and(|t| t >= modified);
        (fresh && std::io::Read::read_to_end(&mut f, &mut z).is_ok()).then_some(z)
    });
    // Archive pages are never compressed here: a request costs a read, not a compression.
    let doc = Arc::new(Doc::with_gzip(bytes, gz, modified, super::shelf::content_type(ext)));
    let mut cache = ctx.archive_cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() >= ARCHIVE_CACHE
        && let Some(k) = cache.keys().next().cloned()
    {
        cache.remove(&k);
    }
    cache.insert(path.to_path_buf(), (modified, meta.len(), doc.clone()));
    Ok(doc)
}

fn static_doc<B>(doc: Option<&Doc>, route: &'static str, req: &Request<B>, ctx: &Ctx) -> Response<Body> {
    let Some(doc) = doc else {
        crate::metrics::get().request(route, 503);
        return text(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable: starting\n");
    };
    let r = representation(doc, req.headers(), &ctx.cache_control);
    crate::metrics::get().request(route, r.status().as_u16());
    r
}

/// The 200 or 304 answer for a document: encoding by `Accept-Encoding`, then the validators
/// (RFC 9110 §13.2.2: If-None-Match decides when present; If-Modified-Since only without it).
fn representation(doc: &Doc, headers: &HeaderMap, cache_control: &HeaderValue) -> Response<Body> {
    let (enc, body) = doc.body(negotiate(headers.get(header::ACCEPT_ENCODING)));
    let etag = doc.etags[enc as usize].to_str().unwrap_or_default();
    let fresh = match headers.contains_key(header::IF_NONE_MATCH) {
        true => headers.get_all(header::IF_NONE_MATCH).iter().any(|v| v.to_str().is_ok_and(|v| none_match(v, etag))),
        // A date that does not parse, or lies in the future, is ignored (RFC 9110 §13.1.3); the
        // document's own Last-Modified (which may run a second or two ahead, see `Shelf`) is valid.
        false => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since: SystemTime| doc.modified <= since && since <= SystemTime::now().max(doc.modified)),
    };
    let mut r = if fresh {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Full::new(body.clone()))
    };
    let h = r.headers_mut();
    if !fresh {
        h.insert(header::CONTENT_TYPE, doc.content_type.clone());
        match enc {
            Encoding::Gzip => {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            Encoding::Br => {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
            }
            Encoding::Identity => {}
        }
    }
    h.insert(header::ETAG, doc.etags[enc as usize].clone());
    h.insert(header::LAST_MODIFIED, doc.last_modified.clone());
    h.insert(header::CACHE_CONTROL, cache_control.clone());
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// Whether an If-None-Match value matches the representation's ETag (weak comparison, as RFC
/// 9110 asks for GET: `W/` is ignored): `*`, or a listed tag equal to it. Each encoding has its
/// own tag, so a cache holding the brotli form cannot revalidate it as the gzip one.
fn none_match(value: &str, etag: &str) -> bool {
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    value.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// brotli, then gzip, then identity, by the client's q-values (`*` stands for unnamed codings).
fn negotiate(value: Option<&HeaderValue>) -> Encoding {
    let Some(v) = value.and_then(|v| v.to_str().ok()) else { return Encoding::Identity };
    let (mut br, mut gz, mut star) = (None, None, None);
    for part in v.split(',') {
        let mut it = part.split(';');
        let coding = it.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = it
            .find_map(|p| {
                let p = p.trim();
                p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="))
            })
            .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
        match coding.as_str() {
            "br" => br = Some(q),
            "gzip" | "x-gzip" => gz = Some(q),
            "*" => star = Some(q),
            _ => {}
        }
    }
    let (br, gz) = (br.or(star).unwrap_or(0.0), gz.or(star).unwrap_or(0.0));
    if br > 0.0 && br >= gz {
        Encoding::Br
    } else if gz > 0.0 {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// `Authorization: Bearer <key>`, else `?key=<key>`.
fn presented_key<B>(req: &Request<B>) -> Option<String> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, key) = v.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| key.trim().to_string());
    }
    let query = req.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "key").map(|(_, v)| v.into_owned())
}

/// The one 404 every unknown, unpublished-archive or unreadable path gets (counted by route).
fn not_found(route: &'static str) -> Response<Body> {
    crate::metrics::get().request(route, 404);
    text(StatusCode::NOT_FOUND, "404 Not Found: no such feed or page here\n")
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// HEAD: the same headers, the length the GET body would have, no body.
fn strip_body(r: Response<Body>) -> Response<Body> {
    let (mut parts, body) = r.into_parts();
    if let Some(n) = hyper::body::Body::size_hint(&body).exact()
        && parts.status != StatusCode::NOT_MODIFIED
    {
        parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Response::from_parts(parts, Full::new(Bytes::new()))
}

impl Health {
    /// Ready: the store answers, the last clean publish is younger than two schedule periods
    /// (plus a little for the publish itself), and the drop folder can be listed.
    pub fn ready(&self) -> Result<(), String> {
        self.store.ping().map_err(|e| format!("store: {e}"))?;
        if let Some((feed, why)) = crate::metrics::get().refusals().into_iter().next() {
            return Err(format!("feed {feed}: publish refused: {why}"));
        }
        let Some(last) = crate::metrics::get().last_ok_publish() else {
            return Err("no publish pass has completed without errors yet".into());
        };
        if let Some(first) = self.schedule.next_after(last)
            && let Some(second) = self.schedule.next_after(first)
        {
            let slack = (second - first).min(chrono::TimeDelta::seconds(10));
            if Utc::now() > second + slack {
                return Err(format!(
                    "the last clean publish was at {}, more than two schedule periods ago ({}); see the log for why publishing fails",
                    last.to_rfc3339(),
                    self.schedule.text()
                ));
            }
        }
        std::fs::read_dir(&self.drop).map_err(|e| format!("drop folder {}: {e}", self.drop.display()))?;
        Ok(())
    }

    pub fn metrics(&self, private: bool) -> String {
        let sources: Vec<(String, String, u64, u64, u64)> = self
            .sources
            .iter()
            .map(|name| match self.store.source_state(name) {
                Ok(Some(s)) => (name.clone(), s.status, s.polls, s.not_modified, s.errors),
                _ => (name.clone(), "new".into(), 0, 0, 0),
            })
            .collect();
        let hidden: &[String] = if private { &[] } else { &self.keyed };
        crate::metrics::get().render(self.store.len(), &sources, hidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_lists_and_encodings() {
        assert!(none_match("\"abc\"", "\"abc\""));
        assert!(none_match("\"x\", W/\"abc-gz\"", "\"abc-gz\""));
        assert!(!none_match("\"abc-br\"", "\"abc-gz\""));
        assert!(none_match("*", "\"abc\""));
        assert!(!none_match("\"abcd\"", "\"abc\""));
        assert!(!none_match("abc", "\"abc\""));
        let enc = |v: &'static str| negotiate(Some(&HeaderValue::from_static(v)));
        assert_eq!(enc("gzip, deflate, br"), Encoding::Br);
        assert_eq!(enc("gzip, br;q=0"), Encoding::Gzip);
        assert_eq!(enc("br;q=0.5, gzip;q=0.8"), Encoding::Gzip);
        assert_eq!(enc("*"), Encoding::Br);
        assert_eq!(enc("identity"), Encoding::Identity);
        assert_eq!(negotiate(None), Encoding::Identity);
    }
}
