//! The configuration: TOML text -> `RawConfig` (serde, unknown keys refused) -> `Config` (validated,
//! typed). Nothing here touches the file system beyond reading the one file; directories are checked
//! by the daemon at start. Every error names the file, the key and what is expected.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;

use crate::schedule::Schedule;

/// A configuration error; the text is meant for ops and names file, key and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct Error {
    pub file: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub site: Site,
    pub paths: Paths,
    pub ingest: Ingest,
    pub publish: Publish,
    pub feeds: Vec<Feed>,
    pub fetch: Fetch,
    pub sources: Vec<Source>,
    /// `[server]`: the built-in HTTP server; `None` when the table is absent.
    pub server: Option<Server>,
    /// `[websub] hubs`: hubs told about every changed feed.
    pub hubs: Vec<Url>,
    pub log: Log,
}

/// Top-level `log_format` and `log_level`.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    /// Lines in JSON (one object per event) instead of text.
    pub json: bool,
    /// A `RUST_LOG`-style filter; `$RUST_LOG` wins when set.
    pub level: String,
}

/// `[server]`: serves the feeds, the index, health and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub listen: std::net::SocketAddr,
    /// URL path prefix, `/` or `/prefix/` (always starts and ends with `/`).
    pub base_path: String,
    pub cache_max_age: Duration,
    /// A client must send a request's headers within this long of starting it (or of connecting).
    pub header_timeout: Duration,
    /// An idle keep-alive connection is closed after this long.
    pub keep_alive: Duration,
    pub max_connections: usize,
    /// `/metrics` only here when set (not on `listen`).
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Who may read a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Public,
    /// Only with a key whose SHA-256 is one of these.
    Key(Vec<[u8; 32]>),
}

#[derive(Debug, Clone)]
pub struct Site {
    pub title: String,
    pub link: Url,
    pub description: String,
    pub language: String,
    pub author: String,
    pub id_authority: String,
    pub timezone: Tz,
}

#[derive(Debug, Clone)]
pub struct Paths {
    pub drop: PathBuf,
    pub state: PathBuf,
    pub output: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Ingest {
    pub max_size: u64,
    pub settle: Duration,
    pub rescan: Duration,
    pub article_link: String,
    pub watch: bool,
}

#[derive(Debug, Clone)]
pub struct Publish {
    pub schedule: Schedule,
    pub on_ingest: bool,
    pub debounce: Duration,
    pub feeds_url: Url,
}

#[derive(Debug, Clone)]
pub struct Feed {
    pub name: String,
    pub title: String,
    pub description: String,
    pub id: Option<String>,
    pub limit: usize,
    pub categories: Vec<String>,
    pub languages: Vec<String>,
    /// Only articles of these sources (`drop` is the drop folder); `None`: every source.
    pub sources: Option<Vec<String>>,
    /// At most this many articles of one source.
    pub per_source_limit: Option<usize>,
    pub access: Access,
    /// RFC 5005 archive pages for articles that leave the window (public feeds only).
    pub archive: bool,
}

/// `[fetch]`: how external feeds are polled.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub every: Duration,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_body: u64,
    pub concurrency: usize,
    pub user_agent: String,
    pub allow_private: bool,
    pub max_backoff: Duration,
}

/// `[[source]]`: one external feed.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub url: Url,
    pub every: Duration,
    pub schedule: Option<Schedule>,
    pub category: Option<String>,
    pub language: Option<String>,
    pub max_items: Option<usize>,
    pub max_age: Option<Duration>,
    pub enabled: bool,
    pub allow_private: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    log_format: Option<String>,
    log_level: Option<String>,
    site: RawSite,
    #[serde(default)]
    paths: RawPaths,
    #[serde(default)]
    ingest: RawIngest,
    #[serde(default)]
    publish: RawPublish,
    #[serde(default)]
    feed: Vec<RawFeed>,
    #[serde(default)]
    fetch: RawFetch,
    #[serde(default)]
    source: Vec<RawSource>,
    server: Option<RawServer>,
    #[serde(default)]
    websub: RawWebSub,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    base_path: Option<String>,
    cache_max_age: Option<String>,
    header_timeout: Option<String>,
    keep_alive: Option<String>,
    max_connections: Option<i64>,
    metrics_listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebSub {
    #[serde(default)]
    hubs: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFetch {
    every: Option<String>,
    timeout: Option<String>,
    connect_timeout: Option<String>,
    max_body: Option<String>,
    concurrency: Option<i64>,
    user_agent: Option<String>,
    allow_private: Option<bool>,
    max_backoff: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: String,
    url: String,
    every: Option<String>,
    schedule: Option<String>,
    category: Option<String>,
    language: Option<String>,
    max_items: Option<i64>,
    max_age: Option<String>,
    enabled: Option<bool>,
    allow_private: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    title: String,
    link: String,
    description: Option<String>,
    language: Option<String>,
    author: Option<String>,
    id_authority: Option<String>,
    timezone: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    drop: Option<PathBuf>,
    state: Option<PathBuf>,
    output: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    max_size: Option<String>,
    settle: Option<String>,
    rescan: Option<String>,
    article_link: Option<String>,
    watch: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPublish {
    schedule: Option<String>,
    on_ingest: Option<bool>,
    debounce: Option<String>,
    feeds_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: String,
    title: Option<String>,
    description: Option<String>,
    id: Option<String>,
    limit: Option<i64>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    languages: Vec<String>,
    sources: Option<Vec<String>>,
    per_source_limit: Option<i64>,
    access: Option<String>,
    keys: Option<Vec<String>>,
    archive: Option<bool>,
}

impl Config {
    /// Reads and validates the file; relative paths in it are relative to its directory.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error {
            file: path.display().to_string(),
            message: format!("cannot read the config file: {e} (pass --config PATH or set SIAR_CONFIG)"),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        Config::parse(&text, path, dir)
    }

    /// Parses config text; `file` is only used in messages, `base` resolves relative paths.
    pub fn parse(text: &str, file: &Path, base: &Path) -> Result<Config, Error> {
        let fail = |message: String| Error { file: file.display().to_string(), message };
        let raw: RawConfig = toml::from_str(text).map_err(|e| fail(e.to_string().trim_end().to_string()))?;

        let site = &raw.site;
        let link = parse_url(&site.link).map_err(|m| fail(format!("[site] link: {m}")))?;
        if site.title.trim().is_empty() {
            return Err(fail("[site] title: must not be empty".into()));
        }
        let language = canonical_language(site.language.as_deref().unwrap_or("en"));
        if !is_language_tag(&language) {
            return Err(fail(format!(
                "[site] language: {language:?} is not a language tag; expected e.g. \"id\", \"en\" or \"en-GB\""
            )));
        }
        let host = link.host_str().unwrap_or_default().to_string();
        let id_authority = site.id_authority.clone().unwrap_or(host);
        if !is_authority(&id_authority) {
            return Err(fail(format!(
                "[site] id_authority: {id_authority:?} is not a domain name or e-mail address (RFC 4151 tagging entity); \
                 expected e.g. \"news.example.org\""
            )));
        }
        let timezone = match &site.timezone {
            None => Tz::UTC,
            Some(name) => name.parse::<Tz>().map_err(|_| {
                fail(format!(
                    "[site] timezone: {name:?} is not an IANA time zone; expected e.g. \"Asia/Jakarta\" or \"UTC\""
                ))
            })?,
        };
        let site = Site {
            title: site.title.trim().to_string(),
            description: site.description.clone().unwrap_or_else(|| site.title.trim().to_string()),
            author: site.author.clone().unwrap_or_else(|| site.title.trim().to_string()),
            link,
            language,
            id_authority,
            timezone,
        };

        let resolve = |p: &Option<PathBuf>, default: &str| {
            let p = p.clone().unwrap_or_else(|| PathBuf::from(default));
            normalize_path(&if p.is_absolute() { p } else { base.join(p) })
        };
        let paths = Paths {
            drop: resolve(&raw.paths.drop, "drop"),
            state: resolve(&raw.paths.state, "state"),
            output: resolve(&raw.paths.output, "feeds"),
        };
        for (key, a, b) in [
            ("drop", &paths.drop, &paths.state),
            ("drop", &paths.drop, &paths.output),
            ("state", &paths.state, &paths.output),
        ] {
            if a == b {
                return Err(fail(format!(
                    "[paths] {key}: {} is used twice; drop, state and output must differ",
                    a.display()
                )));
            }
        }

        let ing = &raw.ingest;
        let ingest = Ingest {
            max_size: parse_size(ing.max_size.as_deref().unwrap_or("2MiB"))
                .map_err(|m| fail(format!("[ingest] max_size: {m}")))?,
            settle: parse_duration(ing.settle.as_deref().unwrap_or("2s"))
                .map_err(|m| fail(format!("[ingest] settle: {m}")))?,
            rescan: parse_duration(ing.rescan.as_deref().unwrap_or("60s"))
                .map_err(|m| fail(format!("[ingest] rescan: {m}")))?,
            article_link: ing.article_link.clone().unwrap_or_else(|| "{site}{slug}".into()),
            watch: ing.watch.unwrap_or(true),
        };
        if ingest.rescan < Duration::from_millis(100) {
            return Err(fail("[ingest] rescan: must be at least 100ms".into()));
        }
        if !ingest.article_link.contains("{slug}") {
            return Err(fail(format!(
                "[ingest] article_link: {:?} must contain {{slug}} (and may contain {{site}}), e.g. \"{{site}}berita/{{slug}}\"",
                ingest.article_link
            )));
        }
        let sample = crate::article::article_link(&ingest.article_link, &site.link, "x");
        parse_url(&sample).map_err(|m| fail(format!("[ingest] article_link: gives {sample:?}, which {m}")))?;

        let p = &raw.publish;
        let schedule_text = p.schedule.clone().unwrap_or_else(|| "*/5 * * * *".into());
        let schedule = Schedule::parse(&schedule_text, site.timezone)
            .map_err(|m| fail(format!("[publish] schedule: {schedule_text:?}: {m}")))?;
        let feeds_url = match &p.feeds_url {
            Some(u) => parse_url(u).map_err(|m| fail(format!("[publish] feeds_url: {m}")))?,
            None => {
                site.link.join("feeds/").map_err(|e| fail(format!("[site] link: cannot build the feeds URL: {e}")))?
            }
        };
        if !feeds_url.path().ends_with('/') {
            return Err(fail(format!("[publish] feeds_url: {feeds_url} must end with '/'")));
        }
        let publish = Publish {
            schedule,
            on_ingest: p.on_ingest.unwrap_or(true),
            debounce: parse_duration(p.debounce.as_deref().unwrap_or("2s"))
                .map_err(|m| fail(format!("[publish] debounce: {m}")))?,
            feeds_url,
        };

        if raw.feed.is_empty() {
            return Err(fail("no [[feed]] table: add at least one, e.g.\n[[feed]]\nname = \"all\"\nlimit = 50".into()));
        }
        let mut feeds: Vec<Feed> = Vec::new();
        for (i, f) in raw.feed.iter().enumerate() {
            let key = format!("[[feed]] #{} ({:?})", i + 1, f.name);
            if !is_feed_name(&f.name) {
                return Err(fail(format!(
                    "{key} name: expected 1-64 characters a-z, 0-9, '-' or '_', starting with a letter or digit (it names the files)"
                )));
            }
            if feeds.iter().any(|g| g.name == f.name) {
                return Err(fail(format!("{key} name: used by an earlier [[feed]]; names must be unique")));
            }
            let limit = f.limit.unwrap_or(50);
            if !(1..=100_000).contains(&limit) {
                return Err(fail(format!("{key} limit: {limit} is out of range; expected 1 to 100000")));
            }
            let per_source_limit = match f.per_source_limit {
                None => None,
                Some(n) if (1..=100_000).contains(&n) => Some(n as usize),
                Some(n) => {
                    return Err(fail(format!("{key} per_source_limit: {n} is out of range; expected 1 to 100000")));
                }
            };
            if let Some(names) = &f.sources {
                for n in names {
                    if n != crate::article::DROP_SOURCE && !raw.source.iter().any(|s| &s.name == n) {
                        return Err(fail(format!(
                            "{key} sources: {n:?} is not \"drop\" (the drop folder) nor the name of a [[source]]"
                        )));
                    }
                }
            }
            for l in &f.languages {
                if !is_language_tag(l) {
                    return Err(fail(format!("{key} languages: {l:?} is not a language tag")));
                }
            }
            if let Some(id) = &f.id {
                parse_url(id)
                    .or_else(|m| {
                        if id.starts_with("tag:") || id.starts_with("urn:") { Ok(site.link.clone()) } else { Err(m) }
                    })
                    .map_err(|m| fail(format!("{key} id: {m} (use an absolute IRI such as a tag: URI)")))?;
            }
            feeds.push(Feed {
                name: f.name.clone(),
                title: f.title.clone().unwrap_or_else(|| site.title.clone()),
                description: f.description.clone().unwrap_or_else(|| site.description.clone()),
                id: f.id.clone(),
                limit: limit as usize,
                categories: f.categories.iter().map(|c| c.trim().to_lowercase()).collect(),
                languages: f.languages.iter().map(|l| canonical_language(l).to_lowercase()).collect(),
                sources: f.sources.clone(),
                per_source_limit,
                access: parse_access(f, &key).map_err(fail)?,
                archive: f.archive.unwrap_or(true),
            });
            if f.archive == Some(true) && f.access.as_deref() == Some("key") {
                return Err(fail(format!("{key} archive: keyed feeds have no archive pages; remove archive = true")));
            }
        }

        let fetch = parse_fetch(&raw.fetch, &site).map_err(fail)?;
        let sources = parse_sources(&raw.source, &fetch, &site).map_err(fail)?;
        let server = match &raw.server {
            Some(s) => Some(parse_server(s, &publish).map_err(fail)?),
            None => None,
        };
        let mut hubs = Vec::new();
        for h in &raw.websub.hubs {
            hubs.push(parse_url(h).map_err(|m| fail(format!("[websub] hubs: {h:?}: {m}")))?);
        }
        let log = Log {
            json: match raw.log_format.as_deref().unwrap_or("text") {
                "text" => false,
                "json" => true,
                other => return Err(fail(format!("log_format: {other:?}; expected \"text\" or \"json\""))),
            },
            level: raw.log_level.clone().unwrap_or_else(|| "info".into()),
        };
        if tracing_subscriber::EnvFilter::try_new(&log.level).is_err() {
            return Err(fail(format!(
                "log_level: {:?} is not a filter; expected e.g. \"info\", \"debug\" or \"info,siar::fetch=debug\"",
                log.level
            )));
        }
        Ok(Config { file: file.to_path_buf(), site, paths, ingest, publish, feeds, fetch, sources, server, hubs, log })
    }
}

fn parse_access(f: &RawFeed, key: &str) -> Result<Access, String> {
    match (f.access.as_deref().unwrap_or("public"), &f.keys) {
        ("public", None) => Ok(Access::Public),
        ("public", Some(_)) => Err(format!("{key} keys: only a feed with access = \"key\" takes keys")),
        ("key", None) => Err(format!(
            "{key} keys: access = \"key\" needs at least one key hash; make one with `siar keys new {}`",
            f.name
        )),
        ("key", Some(list)) => {
            if list.is_empty() {
                return Err(format!("{key} keys: empty; make a key with `siar keys new {}`", f.name));
            }
            let mut hashes = Vec::new();
            for k in list {
                hashes.push(crate::access::parse_hash(k).ok_or_else(|| {
                    format!(
                        "{key} keys: {k:?} is not \"sha256:\" followed by 64 lowercase hex digits; paste the line                          `siar keys new {}` prints (never the key itself)",
                        f.name
                    )
                })?);
            }
            Ok(Access::Key(hashes))
        }
        (other, _) => Err(format!("{key} access: {other:?}; expected \"public\" or \"key\"")),
    }
}

fn parse_server(s: &RawServer, publish: &Publish) -> Result<Server, String> {
    let addr = |v: &str, key: &str| {
        v.parse::<std::net::SocketAddr>().map_err(|_| {
            format!("[server] {key}: {v:?} is not an address:port, e.g. \"127.0.0.1:8080\" or \"[::]:8080\"")
        })
    };
    let duration = |v: &Option<String>, default: &str, key: &str| {
        parse_duration(v.as_deref().unwrap_or(default)).map_err(|m| format!("[server] {key}: {m}"))
    };
    let base_path = s.base_path.clone().unwrap_or_else(|| "/".into());
    let segment_ok = |seg: &str| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    let inner = base_path.trim_start_matches('/').trim_end_matches('/');
    if !base_path.starts_with('/') || (!inner.is_empty() && !inner.split('/').all(segment_ok)) {
        return Err(format!(
            "[server] base_path: {base_path:?}; expected \"/\" or a path such as \"/siar/\" (letters, digits, - . _ ~)"
        ));
    }
    let base_path = if inner.is_empty() { "/".to_string() } else { format!("/{inner}/") };
    // Default max-age: the time between two scheduled publishes (at most a day).
    let period = publish
        .schedule
        .upcoming(chrono::Utc::now(), 2)
        .windows(2)
        .next()
        .and_then(|w| (w[1] - w[0]).to_std().ok())
        .unwrap_or(Duration::from_secs(300))
        .min(Duration::from_secs(86_400));
    let cache_max_age = match &s.cache_max_age {
        Some(v) => parse_duration(v).map_err(|m| format!("[server] cache_max_age: {m}"))?,
        None => period,
    };
    let server = Server {
        listen: addr(s.listen.as_deref().unwrap_or("127.0.0.1:8080"), "listen")?,
        base_path,
        cache_max_age,
        header_timeout: duration(&s.header_timeout, "10s", "header_timeout")?,
        keep_alive: duration(&s.keep_alive, "60s", "keep_alive")?,
        max_connections: match s.max_connections.unwrap_or(4096) {
            n @ 1..=1_000_000 => n as usize,
            n => return Err(format!("[server] max_connections: {n} is out of range; expected 1 to 1000000")),
        },
        metrics_listen: match &s.metrics_listen {
            Some(v) => Some(addr(v, "metrics_listen")?),
            None => None,
        },
    };
    if server.header_timeout < Duration::from_millis(100) || server.keep_alive < Duration::from_millis(100) {
        return Err("[server] header_timeout and keep_alive: must be at least 100ms".into());
    }
    Ok(server)
}

fn parse_fetch(f: &RawFetch, site: &Site) -> Result<Fetch, String> {
    let duration = |v: &Option<String>, default: &str, key: &str| {
        parse_duration(v.as_deref().unwrap_or(default)).map_err(|m| format!("[fetch] {key}: {m}"))
    };
    let fetch = Fetch {
        every: duration(&f.every, "30m", "every")?,
        timeout: duration(&f.timeout, "20s", "timeout")?,
        connect_timeout: duration(&f.connect_timeout, "10s", "connect_timeout")?,
        max_body: parse_size(f.max_body.as_deref().unwrap_or("10MiB")).map_err(|m| format!("[fetch] max_body: {m}"))?,
        concurrency: match f.concurrency.unwrap_or(8) {
            n @ 1..=1024 => n as usize,
            n => return Err(format!("[fetch] concurrency: {n} is out of range; expected 1 to 1024")),
        },
        user_agent: f
            .user_agent
            .clone()
            .unwrap_or_else(|| format!("siar/{} (+{})", env!("CARGO_PKG_VERSION"), site.link)),
        allow_private: f.allow_private.unwrap_or(false),
        max_backoff: duration(&f.max_backoff, "24h", "max_backoff")?,
    };
    if fetch.every < Duration::from_secs(1) {
        return Err("[fetch] every: must be at least 1s".into());
    }
    if fetch.timeout < Duration::from_millis(100) || fetch.connect_timeout < Duration::from_millis(100) {
        return Err("[fetch] timeout and connect_timeout: must be at least 100ms".into());
    }
    if fetch.max_backoff < fetch.every.min(Duration::from_secs(1)) {
        return Err("[fetch] max_backoff: must be at least 1s".into());
    }
    if fetch.user_agent.trim().is_empty() || fetch.user_agent.chars().any(|c| c.is_control()) {
        return Err("[fetch] user_agent: must be non-empty text without control characters".into());
    }
    Ok(fetch)
}

/// Source names: `[a-z0-9_-]{1,64}`; `drop` is the drop folder's.
pub fn is_source_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn parse_sources(raw: &[RawSource], fetch: &Fetch, site: &Site) -> Result<Vec<Source>, String> {
    let mut sources: Vec<Source> = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let key = format!("[[source]] #{} ({:?})", i + 1, s.name);
        if !is_source_name(&s.name) {
            return Err(format!("{key} name: expected 1-64 characters a-z, 0-9, '-' or '_'"));
        }
        if s.name == crate::article::DROP_SOURCE {
            return Err(format!("{key} name: \"drop\" is the drop folder's source name; choose another"));
        }
        if sources.iter().any(|o| o.name == s.name) {
            return Err(format!("{key} name: used by an earlier [[source]]; names must be unique"));
        }
        let url = parse_url(&s.url).map_err(|m| format!("{key} url: {m}"))?;
        if s.every.is_some() && s.schedule.is_some() {
            return Err(format!("{key}: set either every or schedule, not both"));
        }
        let every = match &s.every {
            Some(e) => parse_duration(e).map_err(|m| format!("{key} every: {m}"))?,
            None => fetch.every,
        };
        if every < Duration::from_secs(1) {
            return Err(format!("{key} every: must be at least 1s"));
        }
        let schedule = match &s.schedule {
            Some(text) => {
                Some(Schedule::parse(text, site.timezone).map_err(|m| format!("{key} schedule: {text:?}: {m}"))?)
            }
            None => None,
        };
        let language = match &s.language {
            Some(l) if is_language_tag(l) => Some(canonical_language(l)),
            Some(l) => return Err(format!("{key} language: {l:?} is not a language tag; expected e.g. \"id\"")),
            None => None,
        };
        let max_items = match s.max_items {
            None => None,
            Some(n) if (1..=1_000_000).contains(&n) => Some(n as usize),
            Some(n) => return Err(format!("{key} max_items: {n} is out of range; expected 1 to 1000000")),
        };
        let max_age = match &s.max_age {
            Some(a) => Some(parse_duration(a).map_err(|m| format!("{key} max_age: {m}"))?),
            None => None,
        };
        sources.push(Source {
            name: s.name.clone(),
            url,
            every,
            schedule,
            category: s.category.as_ref().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()),
            language,
            max_items,
            max_age,
            enabled: s.enabled.unwrap_or(true),
            allow_private: s.allow_private.unwrap_or(fetch.allow_private),
        });
    }
    Ok(sources)
}

impl Feed {
    /// The public URL of one of this feed's files (`ext` is rss, atom or json).
    pub fn url(&self, publish: &Publish, ext: &str) -> String {
        format!("{}{}.{ext}", publish.feeds_url, self.name)
    }

    /// The public URL of archive page `n` (1 = oldest).
    pub fn archive_url(&self, publish: &Publish, n: u32, ext: &str) -> String {
        format!("{}{}/archive/{n}.{ext}", publish.feeds_url, self.name)
    }

    /// Whether this feed keeps archive pages.
    pub fn archived(&self) -> bool {
        self.archive && self.access == Access::Public
    }

    /// Articles per archive page: the feed's limit, at most 100.
    pub fn archive_page_size(&self) -> usize {
        self.limit.clamp(1, 100)
    }
}

/// Makes a path absolute and removes `.` and `..` lexically, so logs show `/srv/siar/drop`, not
/// `config/../drop`.
fn normalize_path(p: &Path) -> PathBuf {
    use std::path::Component;
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn parse_url(s: &str) -> Result<Url, String> {
    let u = Url::parse(s)
        .map_err(|e| format!("{s:?} is not an absolute URL ({e}); expected e.g. \"https://news.example.org/\""))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(format!("{s:?} must be an http or https URL"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host"));
    }
    Ok(u)
}

pub fn is_feed_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

/// ISO 639-1 language codes: a two-letter primary subtag must be one of them.
const ISO_639_1: &[&str] = &[
    "aa", "ab", "ae", "af", "ak", "am", "an", "ar", "as", "av", "ay", "az", "ba", "be", "bg", "bh", "bi", "bm", "bn",
    "bo", "br", "bs", "ca", "ce", "ch", "co", "cr", "cs", "cu", "cv", "cy", "da", "de", "dv", "dz", "ee", "el", "en",
    "eo", "es", "et", "eu", "fa", "ff", "fi", "fj", "fo", "fr", "fy", "ga", "gd", "gl", "gn", "gu", "gv", "ha", "he",
    "hi", "ho", "hr", "ht", "hu", "hy", "hz", "ia", "id", "ie", "ig", "ii", "ik", "io", "is", "it", "iu", "ja", "jv",
    "ka", "kg", "ki", "kj", "kk", "kl", "km", "kn", "ko", "kr", "ks", "ku", "kv", "kw", "ky", "la", "lb", "lg", "li",
    "ln", "lo", "lt", "lu", "lv", "mg", "mh", "mi", "mk", "ml", "mn", "mo", "mr", "ms", "mt", "my", "na", "nb", "nd",
    "ne", "ng", "nl", "nn", "no", "nr", "nv", "ny", "oc", "oj", "om", "or", "os", "pa", "pi", "pl", "ps", "pt", "qu",
    "rm", "rn", "ro", "ru", "rw", "sa", "sc", "sd", "se", "sg", "sh", "si", "sk", "sl", "sm", "sn", "so", "sq", "sr",
    "ss", "st", "su", "sv", "sw", "ta", "te", "tg", "th", "ti", "tk", "tl", "tn", "to", "tr", "ts", "tt", "tw", "ty",
    "ug", "uk", "ur", "uz", "ve", "vi", "vo", "wa", "wo", "xh", "yi", "yo", "za", "zh", "zu",
];

/// ISO 639-2 language codes: a three-letter primary subtag must be one of them (feed readers and
/// validators know these; codes only in ISO 639-3 are refused with a message).
const ISO_639_2: &[&str] = &[
    "aar", "abk", "ace", "ach", "ada", "ady", "afa", "afh", "afr", "ain", "aka", "akk", "alb", "ale", "alg", "alt",
    "amh", "ang", "anp", "apa", "ara", "arc", "arg", "arm", "arn", "arp", "art", "arw", "asm", "ast", "ath", "aus",
    "ava", "ave", "awa", "aym", "aze", "bad", "bai", "bak", "bal", "bam", "ban", "baq", "bas", "bat", "bej", "bel",
    "bem", "ben", "ber", "bho", "bih", "bik", "bin", "bis", "bla", "bnt", "bod", "bos", "bra", "bre", "btk", "bua",
    "bug", "bul", "bur", "byn", "cad", "cai", "car", "cat", "cau", "ceb", "cel", "ces", "cha", "chb", "che", "chg",
    "chi", "chk", "chm", "chn", "cho", "chp", "chr", "chu", "chv", "chy", "cmc", "cop", "cor", "cos", "cpe", "cpf",
    "cpp", "cre", "crh", "crp", "csb", "cus", "cym", "cze", "dak", "dan", "dar", "day", "del", "den", "deu", "dgr",
    "din", "div", "doi", "dra", "dsb", "dua", "dum", "dut", "dyu", "dzo", "efi", "egy", "eka", "ell", "elx", "eng",
    "enm", "epo", "est", "eus", "ewe", "ewo", "fan", "fao", "fas", "fat", "fij", "fil", "fin", "fiu", "fon", "fra",
    "fre", "frm", "fro", "frr", "frs", "fry", "ful", "fur", "gaa", "gay", "gba", "gem", "geo", "ger", "gez", "gil",
    "gla", "gle", "glg", "glv", "gmh", "goh", "gon", "gor", "got", "grb", "grc", "gre", "grn", "gsw", "guj", "gwi",
    "gws", "hai", "hat", "hau", "haw", "heb", "her", "hil", "him", "hin", "hit", "hmn", "hmo", "hrv", "hsb", "hun",
    "hup", "hye", "iba", "ibo", "ice", "ido", "iii", "ijo", "iku", "ile", "ilo", "ina", "inc", "ind", "ine", "inh",
    "ipk", "ira", "iro", "isl", "ita", "jav", "jbo", "jpn", "jpr", "jrb", "kaa", "kab", "kac", "kal", "kam", "kan",
    "kar", "kas", "kat", "kau", "kaw", "kaz", "kbd", "kha", "khi", "khm", "kho", "kik", "kin", "kir", "kmb", "kok",
    "kom", "kon", "kor", "kos", "kpe", "krc", "krl", "kro", "kru", "kua", "kum", "kur", "kut", "lad", "lah", "lam",
    "lao", "lat", "lav", "lez", "lim", "lin", "lit", "lol", "loz", "ltz", "lua", "lub", "lug", "lui", "lun", "luo",
    "lus", "mac", "mad", "mag", "mah", "mai", "mak", "mal", "man", "mao", "map", "mar", "mas", "may", "mdf", "mdr",
    "men", "mga", "mic", "min", "mis", "mkd", "mkh", "mlg", "mlt", "mnc", "mni", "mno", "moh", "mol", "mon", "mos",
    "mri", "msa", "mul", "mun", "mus", "mwl", "mwr", "mya", "myn", "myv", "nah", "nai", "nap", "nau", "nav", "nbl",
    "nde", "ndo", "nds", "nep", "new", "nia", "nic", "niu", "nld", "nno", "nob", "nog", "non", "nor", "nso", "nub",
    "nwc", "nya", "nym", "nyn", "nyo", "nzi", "oci", "oji", "ori", "orm", "osa", "oss", "ota", "oto", "paa", "pag",
    "pal", "pam", "pan", "pap", "pau", "peo", "per", "phi", "phn", "pli", "pol", "pon", "por", "pra", "pro", "pus",
    "qaa", "qtz", "que", "raj", "rap", "rar", "roa", "roh", "rom", "ron", "rum", "run", "rup", "rus", "sad", "sag",
    "sah", "sai", "sal", "sam", "san", "sas", "sat", "scc", "scn", "sco", "scr", "sel", "sem", "sga", "sgn", "shn",
    "sid", "sin", "sio", "sit", "sla", "slk", "slo", "slv", "sma", "sme", "smi", "smj", "smn", "smo", "sms", "sna",
    "snd", "snk", "sog", "som", "son", "sot", "spa", "sqi", "srd", "srn", "srp", "srr", "ssa", "ssw", "suk", "sun",
    "sus", "sux", "swa", "swe", "syr", "tah", "tai", "tam", "tat", "tel", "tem", "ter", "tet", "tgk", "tgl", "tha",
    "tib", "tig", "tir", "tiv", "tkl", "tlh", "tli", "tmh", "tog", "ton", "tpi", "tsi", "tsn", "tso", "tuk", "tum",
    "tup", "tur", "tut", "tvl", "twi", "tyv", "udm", "uga", "uig", "ukr", "umb", "und", "urd", "uzb", "vai", "ven",
    "vie", "vol", "vot", "wak", "wal", "war", "was", "wel", "wen", "wln", "wol", "xal", "xho", "yao", "yap", "yid",
    "yor", "ypk", "zap", "zen", "zha", "zho", "znd", "zul", "zun",
];

/// Deprecated codes older tools still write, and their replacements (`in` is Indonesian).
const DEPRECATED_LANGUAGES: &[(&str, &str)] = &[("in", "id"), ("iw", "he"), ("ji", "yi"), ("jw", "jv")];

/// A BCP 47 language tag: an ISO 639-1 or ISO 639-2 code and alphanumeric subtags. Deprecated codes are accepted; `canonical_language` replaces them.
pub fn is_language_tag(s: &str) -> bool {
    let canonical = canonical_language(s);
    let mut parts = canonical.split('-');
    let first = parts.next().unwrap_or_default();
    let primary_ok = match first.len() {
        2 => ISO_639_1.contains(&first),
        3 => ISO_639_2.binary_search(&first).is_ok(),
        _ => false,
    };
    primary_ok && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The tag with a lower-case primary subtag and deprecated codes replaced (`in-ID` -> `id-ID`).
pub fn canonical_language(s: &str) -> String {
    let s = s.trim();
    let (first, rest) = s.split_once('-').map_or((s, None), |(a, b)| (a, Some(b)));
    let first = first.to_ascii_lowercase();
    let first =
        DEPRECATED_LANGUAGES.iter().find(|(old, _)| *old == first).map_or(first.as_str(), |(_, new)| new).to_string();
    match rest {
        Some(r) => format!("{first}-{r}"),
        None => first,
    }
}

fn is_authority(s: &str) -> bool {
    let domain = s.rsplit('@').next().unwrap_or_default();
    !domain.is_empty()
        && domain.contains('.')
        && domain.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// "2s", "500ms", "5m", "1h30m", "1d"; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let expected = || format!("{s:?} is not a duration; expected e.g. \"500ms\", \"2s\", \"5m\", \"1h30m\"");
    let t = s.trim();
    if t.is_empty() {
        return Err(expected());
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let (num, tail) = rest.split_at(digits);
        let unit_len = tail.find(|c: char| c.is_ascii_digit()).unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let n: f64 = num.parse().map_err(|_| expected())?;
        let secs = match unit.trim() {
            "ms" => n / 1000.0,
            "s" | "sec" => n,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            "d" => n * 86400.0,
            _ => return Err(expected()),
        };
        total += Duration::from_secs_f64(secs);
        rest = tail.trim_start();
    }
    Ok(total)
}

/// "2MiB", "512KiB", "10MB", "1000"; a bare number is bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size; expected e.g. \"2MiB\", \"512KiB\""))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        u => return Err(format!("{s:?}: unknown unit {u:?}; expected B, KiB, MiB, GiB, kB, MB or GB")),
    };
    n.checked_mul(mult).filter(|&v| v > 0).ok_or_else(|| format!("{s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[site]\ntitle = \"T\"\nlink = \"https://news.example.org/\"\n[[feed]]\nname = \"all\"\n";

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(text, Path::new("/etc/siar/siar.toml"), Path::new("/etc/siar"))
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).expect("valid");
        assert_eq!(c.paths.drop, PathBuf::from("/etc/siar/drop"));
        assert_eq!(c.site.id_authority, "news.example.org");
        assert_eq!(c.publish.feeds_url.as_str(), "https://news.example.org/feeds/");
        assert_eq!(c.feeds[0].limit, 50);
        assert_eq!(c.ingest.max_size, 2 << 20);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse(&format!("{MINIMAL}colour = \"red\"\n")).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
        assert!(e.starts_with("/etc/siar/siar.toml"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |extra: &str, key: &str| {
            let text = MINIMAL.replace("[[feed]]", &format!("{extra}\n[[feed]]"));
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(key), "{extra}: {e}");
        };
        bad("[publish]\nschedule = \"every tuesday\"", "[publish] schedule");
        bad("[ingest]\nsettle = \"soon\"", "[ingest] settle");
        bad("[ingest]\nmax_size = \"2 parsecs\"", "[ingest] max_size");
        bad("[ingest]\narticle_link = \"{site}x\"", "[ingest] article_link");
        let e = parse(&MINIMAL.replace("name = \"all\"", "name = \"All Feeds\"")).unwrap_err().to_string();
        assert!(e.contains("[[feed]] #1"), "{e}");
    }

    #[test]
    fn language_tags() {
        for ok in ["id", "en-GB", "zh-Hant-TW", "ban", "in", "EN"] {
            assert!(is_language_tag(ok), "{ok}");
        }
        assert!(ISO_639_2.windows(2).all(|w| w[0] < w[1]), "sorted for binary search");
        for bad in ["xx", "qq", "yue", "xyz", "english", "e", "id_ID", ""] {
            assert!(!is_language_tag(bad), "{bad}");
        }
        assert_eq!(canonical_language("in-ID"), "id-ID");
        assert_eq!(canonical_language("EN-gb"), "en-gb");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("2 weeks").is_err());
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("0").is_err());
    }
}
