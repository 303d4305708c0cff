//! HTTP for external feeds: one GET with the stored validators, redirects followed by hand (at
//! most 5, http/https only, every hop's destination checked, loops refused, permanent ones
//! reported), the body read in chunks up to a cap on the *decoded* size, timeouts on connect and on
//! the whole request (slow-drip servers included). Every destination address is checked when it is
//! resolved (a custom resolver), so neither a redirect nor a DNS answer can reach the internal
//! network unless the source allows it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, redirect};
use url::Url;

use crate::config::Fetch;

pub const MAX_REDIRECTS: usize = 5;

const ACCEPT: &str = "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9, \
                      application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "destination not allowed: {url} is {addr}, a private, loopback or reserved address (set allow_private for an intranet source)"
    )]
    NotAllowed { url: String, addr: String },
    #[error("{url}: redirect to {location:?}, which is not an http or https URL")]
    BadRedirect { url: String, location: String },
    #[error("{url}: redirect loop")]
    RedirectLoop { url: String },
    #[error("{url}: more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects { url: String },
    #[error("{url}: the response is larger than max_body ({limit} bytes, counted after decompression)")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16, retry_after: Option<Duration> },
    #[error("{url}: timed out ({what})")]
    Timeout { url: String, what: &'static str },
    #[error("{url}: {detail}")]
    Network { url: String, detail: String },
}

impl Error {
    /// Failures that say nothing about the origin when every source has them at once.
    pub fn is_network(&self) -> bool {
        matches!(self, Error::Network { .. } | Error::Timeout { .. })
    }
}

/// What a successful exchange told us besides the body.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// The URL the body came from (after redirects).
    pub final_url: Option<Url>,
    /// Where every hop from the polled URL was a permanent redirect (301/308): poll this from now on.
    pub moved_to: Option<Url>,
    /// Validators exactly as received (bytes mapped 1:1 to chars, see `latin1`).
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// How long the origin says the response stays fresh (Cache-Control max-age, else Expires).
    pub fresh_for: Option<Duration>,
    pub content_location: Option<Url>,
    pub charset: Option<String>,
}

#[derive(Debug)]
pub enum Response {
    NotModified(Meta),
    Body(Vec<u8>, Meta),
}

/// Two reqwest clients (public-only and private-allowed) sharing the settings of `[fetch]`.
#[derive(Clone)]
pub struct Client {
    public: reqwest::Client,
    private: reqwest::Client,
    max_body: u64,
}

impl Client {
    pub fn new(cfg: &Fetch) -> Result<Client, String> {
        let build = |allow_private: bool| {
            reqwest::Client::builder()
                .user_agent(cfg.user_agent.clone())
                .redirect(redirect::Policy::none())
                .connect_timeout(cfg.connect_timeout)
                .timeout(cfg.timeout)
                .read_timeout(cfg.timeout.min(Duration::from_secs(30)))
                // Polls of one source are minutes apart: an idle connection (and its read buffer)
                // is kept only for the moments when sources of one host are polled together.
                .pool_max_idle_per_host(1)
                .pool_idle_timeout(Duration::from_secs(2))
                // A proxy would resolve names for us and defeat the address check.
                .no_proxy()
                .dns_resolver(Arc::new(Guard { allow_private }))
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        };
        Ok(Client { public: build(false)?, private: build(true)?, max_body: cfg.max_body })
    }

    /// GET `url` with the stored validators; follows redirects by hand.
    pub async fn get(
        &self,
        url: &Url,
        etag: Option<&str>,
        last_modified: Option<&str>,
        allow_private: bool,
    ) -> Result<Response, Error> {
        let client = if allow_private { &self.private } else { &self.public };
        let mut current = url.clone();
        let mut seen = vec![current.clone()];
        let mut all_permanent = true;
        let mut moved_to = None;
        for _ in 0..=MAX_REDIRECTS {
            check_literal(&current, allow_private)?;
            let mut req = client.get(current.clone()).header(header::ACCEPT, ACCEPT);
            if let Some(v) = etag.and_then(|e| HeaderValue::from_bytes(&latin1_bytes(e)).ok()) {
                req = req.header(header::IF_NONE_MATCH, v);
            }
            if let Some(v) = last_modified.and_then(|e| HeaderValue::from_bytes(&latin1_bytes(e)).ok()) {
                req = req.header(header::IF_MODIFIED_SINCE, v);
            }
            let resp = req.send().await.map_err(|e| classify(&current, &e))?;
            let status = resp.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let location = resp.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("");
                let next =
                    current.join(location).ok().filter(|u| matches!(u.scheme(), "http" | "https")).ok_or_else(
                        || Error::BadRedirect { url: current.to_string(), location: location.to_string() },
                    )?;
                all_permanent &= matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT);
                if all_permanent {
                    moved_to = Some(next.clone());
                }
                if seen.contains(&next) {
                    return Err(Error::RedirectLoop { url: url.to_string() });
                }
                seen.push(next.clone());
                current = next;
                continue;
            }
            let meta = meta(resp.headers(), &current, moved_to);
            if status == StatusCode::NOT_MODIFIED {
                return Ok(Response::NotModified(meta));
            }
            if !status.is_success() {
                let retry_after = resp.headers().get(header::RETRY_AFTER).and_then(|v| retry_after(v, Utc::now()));
                return Err(Error::Status { url: current.to_string(), status: status.as_u16(), retry_after });
            }
            if resp.content_length().is_some_and(|n| n > self.max_body) {
                return Err(Error::TooLarge { url: current.to_string(), limit: self.max_body });
            }
            let body = read_capped(resp, self.max_body, &current).await?;
            return Ok(Response::Body(body, meta));
        }
        Err(Error::TooManyRedirects { url: url.to_string() })
    }
}

async fn read_capped(mut resp: reqwest::Response, cap: u64, url: &Url) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > cap {
                    return Err(Error::TooLarge { url: url.to_string(), limit: cap });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(classify(url, &e)),
        }
    }
}

fn meta(h: &HeaderMap, url: &Url, moved_to: Option<Url>) -> Meta {
    let text = |name: header::HeaderName| h.get(name).map(|v| latin1(v.as_bytes()));
    let max_age = h.get_all(header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.split(',').find_map(|d| d.trim().strip_prefix("max-age=")?.trim_matches('"').parse::<u64>().ok())
    });
    let expires = || {
        let at = httpdate::parse_http_date(h.get(header::EXPIRES)?.to_str().ok()?).ok()?;
        let now = h
            .get(header::DATE)
            .and_then(|d| httpdate::parse_http_date(d.to_str().ok()?).ok())
            .unwrap_or_else(std::time::SystemTime::now);
        at.duration_since(now).ok()
    };
    let charset = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|ct| {
        ct.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case("charset").then(|| v.trim().trim_matches('"').to_string())
        })
    });
    Meta {
        final_url: Some(url.clone()),
        moved_to,
        etag: text(header::ETAG),
        last_modified: text(header::LAST_MODIFIED),
        fresh_for: max_age.map(Duration::from_secs).or_else(expires),
        content_location: h
            .get(header::CONTENT_LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| url.join(v).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https")),
        charset,
    }
}

/// `Retry-After`: seconds or an HTTP date.
pub fn retry_after(v: &HeaderValue, now: DateTime<Utc>) -> Option<Duration> {
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at: DateTime<Utc> = httpdate::parse_http_date(s).ok()?.into();
    (at - now).to_std().ok()
}

/// Header bytes as a string, one char per byte, so any value (even obs-text) is kept exactly.
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

fn latin1_bytes(s: &str) -> Vec<u8> {
    s.chars().map(|c| c as u32 as u8).collect()
}

fn classify(url: &Url, e: &reqwest::Error) -> Error {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(na) = s.downcast_ref::<NotAllowed>() {
            return Error::NotAllowed { url: url.to_string(), addr: na.0.to_string() };
        }
        let text = s.to_string();
        if !detail.contains(&text) {
            detail = format!("{detail}: {text}");
        }
        source = s.source();
    }
    if e.is_timeout() {
        let what = if e.is_connect() { "connect" } else { "the whole request may take [fetch] timeout" };
        return Error::Timeout { url: url.to_string(), what };
    }
    Error::Network { url: url.to_string(), detail }
}

/// A host written as an address never reaches the resolver: check it here.
fn check_literal(url: &Url, allow_private: bool) -> Result<(), Error> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(a)) => IpAddr::V4(a),
        Some(url::Host::Ipv6(a)) => IpAddr::V6(a),
        _ => return Ok(()),
    };
    if allow_private || is_public(ip) {
        Ok(())
    } else {
        Err(Error::NotAllowed { url: url.to_string(), addr: ip.to_string() })
    }
}

#[derive(Debug)]
struct NotAllowed(IpAddr);

impl std::fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is a private, loopback or reserved address", self.0)
    }
}

impl std::error::Error for NotAllowed {}

/// The resolver: the system's answer, with every address checked at connect time.
struct Guard {
    allow_private: bool,
}

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                addrs.iter().copied().filter(|a| allow_private || is_public(a.ip())).collect();
            match (allowed.is_empty(), addrs.first()) {
                (true, Some(a)) => Err(Box::new(NotAllowed(a.ip())) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// Whether an address is on the public internet (not private, loopback, link-local, shared,
/// documentation, multicast or reserved; IPv4 inside IPv6 judged as IPv4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => is_public_v4(a),
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = a.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
                return is_public_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
            }
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0100 && s[1..4] == [0; 3]) // discard 100::/64
                || a.segments()[..6] == [0; 6]) // IPv4-compatible ::a.b.c.d (deprecated)
        }
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(o[0] == 0
        || a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF 192.0.0/24
        || (o[0] == 192 && o[1] == 0 && o[2] == 2)
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)
        || o[0] >= 224) // multicast, reserved, broadcast
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifier_denies_every_internal_range() {
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.0.0.2",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.2",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(a.parse().expect(a)), "{a} must be refused");
        }
        for a in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:93.184.216.34", "172.32.0.1"] {
            assert!(is_public(a.parse().expect(a)), "{a} is public");
        }
    }

    #[test]
    fn address_spellings_are_literals_and_refused() {
        for u in [
            "http://127.0.0.2/",
            "http://2130706434/",
            "http://0x7f000002/",
            "http://127.2/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.2]/",
        ] {
            let url = Url::parse(u).expect(u);
            assert!(matches!(check_literal(&url, false), Err(Error::NotAllowed { .. })), "{u}");
            assert!(check_literal(&url, true).is_ok(), "{u} with allow_private");
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z").expect("date").with_timezone(&Utc);
        assert_eq!(retry_after(&HeaderValue::from_static("120"), now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after(&HeaderValue::from_static("Fri, 27 Nov 2026 10:05:00 GMT"), now),
            Some(Duration::from_secs(300))
        );
        assert_eq!(retry_after(&HeaderValue::from_static("soon"), now), None);
    }

    #[test]
    fn header_bytes_survive_exactly() {
        let raw = b"W/\"abc\xe9\x01\"";
        assert_eq!(latin1_bytes(&latin1(raw)), raw);
    }
}
