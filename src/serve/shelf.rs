//! What the server hands out: an immutable snapshot of every document, each already compressed
//! (gzip, brotli) with its validators, swapped whole after a publish. A request holds the `Arc` of
//! the snapshot it started with, so a download in progress finishes the old version.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::header::HeaderValue;

use crate::config::{Access, Config};
use crate::metrics::{self, FeedCounters};
use crate::publish::Rendered;

/// One representation set: the bytes, their compressed forms (when smaller) and validators.
pub struct Doc {
    /// The bodies' sendfile registrations. First field: fields drop in order, so the address
    /// ranges are unregistered before the bodies below are freed (and their addresses reused).
    _sendfile: [Option<super::zerocopy::Registered>; 3],
    pub identity: Bytes,
    pub gzip: Option<Bytes>,
    pub br: Option<Bytes>,
    /// The content hash (hex): the strong ETag is `"<tag>"`, `"<tag>-gz"` or `"<tag>-br"`.
    pub tag: String,
    pub etags: [HeaderValue; 3],
    pub modified: SystemTime,
    pub last_modified: HeaderValue,
    pub content_type: HeaderValue,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Encoding {
    Identity = 0,
    Gzip = 1,
    Br = 2,
}

impl Doc {
    pub fn new(bytes: Vec<u8>, modified: SystemTime, content_type: &'static str) -> Doc {
        let tag = blake3::hash(&bytes).to_hex()[..32].to_string();
        let gzip = crate::publish::write::gzip(&bytes).filter(|z| z.len() < bytes.len()).map(Bytes::from);
        let br = brotli(&bytes).filter(|z| z.len() < bytes.len()).map(Bytes::from);
        Doc::assemble(Bytes::from(bytes), gzip, br, tag, modified, content_type)
    }

    /// A document whose gzip form was made elsewhere (archive pages: `<page>.gz` beside them).
    pub fn with_gzip(bytes: Vec<u8>, gzip: Option<Vec<u8>>, modified: SystemTime, content_type: &'static str) -> Doc {
        let tag = blake3::hash(&bytes).to_hex()[..32].to_string();
        Doc::assemble(Bytes::from(bytes), gzip.map(Bytes::from), None, tag, modified, content_type)
    }

    fn assemble(
        identity: Bytes,
        gzip: Option<Bytes>,
        br: Option<Bytes>,
        tag: String,
        modified: SystemTime,
        content_type: &'static str,
    ) -> Doc {
        // HTTP dates have whole seconds: compare and send the truncated time.
        let modified = trunc(modified);
        let value = |v: String| HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("\"x\""));
        let register = |b: Option<&Bytes>| b.and_then(|b| super::zerocopy::register(b));
        Doc {
            _sendfile: [register(Some(&identity)), register(gzip.as_ref()), register(br.as_ref())],
            etags: [value(format!("\"{tag}\"")), value(format!("\"{tag}-gz\"")), value(format!("\"{tag}-br\""))],
            last_modified: value(httpdate::fmt_http_date(modified)),
            content_type: HeaderValue::from_static(content_type),
            identity,
            gzip,
            br,
            tag,
            modified,
        }
    }

    /// The body and ETag for an encoding (falls back to identity when that form is missing).
    pub fn body(&self, enc: Encoding) -> (Encoding, &Bytes) {
        match enc {
            Encoding::Br if self.br.is_some() => (enc, self.br.as_ref().unwrap_or(&self.identity)),
            Encoding::Gzip if self.gzip.is_some() => (enc, self.gzip.as_ref().unwrap_or(&self.identity)),
            _ => (Encoding::Identity, &self.identity),
        }
    }
}

fn brotli(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() / 4);
    let params = brotli::enc::BrotliEncoderParams { quality: 9, lgwin: 22, ..Default::default() };
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).ok()?;
    Some(out)
}

pub fn content_type(ext: &str) -> &'static str {
    match ext {
        "rss" => "application/rss+xml; charset=utf-8",
        "atom" => "application/atom+xml; charset=utf-8",
        "json" => "application/feed+json; charset=utf-8",
        "opml" => "text/x-opml; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

pub fn ext_index(ext: &str) -> Option<usize> {
    crate::publish::FORMATS.iter().position(|e| *e == ext)
}

pub struct FeedEntry {
    /// rss, atom, json (the order of `publish::FORMATS`); `None` until first published.
    pub docs: [Option<Arc<Doc>>; 3],
    pub access: Access,
    pub counters: Arc<FeedCounters>,
    /// `Link:` header: the hubs and the document's own URL, per format.
    pub links: [Option<HeaderValue>; 3],
    /// Archive pages published (RFC 5005), 0 when none.
    pub archive_pages: u32,
}

#[derive(Default)]
pub struct Snapshot {
    pub feeds: HashMap<String, FeedEntry>,
    pub index: Option<Arc<Doc>>,
    pub opml: Option<Arc<Doc>>,
}

#[derive(Default)]
pub struct Shelf {
    current: RwLock<Arc<Snapshot>>,
}

impl Shelf {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Builds the next snapshot from the config, the documents just rendered and, for documents
    /// not rendered this time, the current ones; then swaps it in.
    pub fn update(&self, cfg: &Config, rendered: Vec<Rendered>, archive_pages: &HashMap<String, u32>) {
        let old = self.snapshot();
        let mut fresh: HashMap<(String, &'static str), Rendered> =
            rendered.into_iter().map(|r| ((r.feed.clone(), r.ext), r)).collect();
        let mut next = Snapshot::default();
        for feed in &cfg.feeds {
            let previous = old.feeds.get(&feed.name);
            let docs = crate::publish::FORMATS.map(|ext| {
                let i = ext_index(ext).unwrap_or(0);
                let kept = previous.and_then(|p| p.docs[i].clone());
                match fresh.remove(&(feed.name.clone(), ext)) {
                    // Same bytes as served: keep the compressed forms already made.
                    Some(r)
                        if kept
                            .as_ref()
                            .is_some_and(|k| *k.identity == *r.bytes && k.modified == trunc(r.modified)) =>
                    {
                        kept
                    }
                    // Changed bytes get a later Last-Modified than the old ones, even within
                    // the same second, so If-Modified-Since alone never hides a change.
                    Some(r) => {
                        let modified = match &kept {
                            Some(k) if trunc(r.modified) <= k.modified => k.modified + Duration::from_secs(1),
                            _ => r.modified,
                        };
                        Some(Arc::new(Doc::new(r.bytes, modified, content_type(ext))))
                    }
                    None => kept,
                }
            });
            let links = crate::publish::FORMATS.map(|ext| {
                let mut parts: Vec<String> = cfg.hubs.iter().map(|h| format!("<{h}>; rel=\"hub\"")).collect();
                parts.push(format!("<{}>; rel=\"self\"", feed.url(&cfg.publish, ext)));
                HeaderValue::from_str(&parts.join(", ")).ok()
            });
            let archive_pages =
                archive_pages.get(&feed.name).copied().or_else(|| previous.map(|p| p.archive_pages)).unwrap_or(0);
            let entry = FeedEntry {
                docs,
                access: feed.access.clone(),
                counters: metrics::get().feed(&feed.name),
                links,
                archive_pages,
            };
            next.feeds.insert(feed.name.clone(), entry);
        }
        let now = SystemTime::now();
        let keep_or_new = |old: &Option<Arc<Doc>>, text: String, ext: &'static str| match old {
            Some(d) if *d.identity == *text.as_bytes() => d.clone(),
            _ => Arc::new(Doc::new(text.into_bytes(), now, content_type(ext))),
        };
        next.index = Some(keep_or_new(&old.index, super::pages::index(cfg), "html"));
        next.opml = Some(keep_or_new(&old.opml, crate::opml::feeds(cfg), "opml"));
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
    }
}

fn trunc(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_are_compressed_once_and_round_trip() {
        let text = "<rss>".to_string() + &"<item>Berita hari ini</item>".repeat(200) + "</rss>";
        let d = Doc::new(text.clone().into_bytes(), SystemTime::now(), content_type("rss"));
        let mut plain = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&d.gzip.as_ref().expect("gz")[..]), &mut plain)
            .expect("gunzip");
        assert_eq!(plain, text);
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &d.br.as_ref().expect("br")[..], &mut out).expect("unbrotli");
        assert_eq!(out, text.as_bytes());
        // Tiny bodies are not worth compressing: identity is served.
        let tiny = Doc::new(b"{}".to_vec(), SystemTime::now(), content_type("json"));
        assert_eq!(tiny.body(Encoding::Gzip).0, Encoding::Identity);
    }
}
