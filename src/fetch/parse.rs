//! A fetched document -> articles. Tolerant reading (feed-rs for RSS 0.9x/1.0/2.0, Atom 0.3/1.0
//! and JSON Feed 1.x), strict output: every text field plain text, all HTML sanitized, every link
//! absolute, every item a stable identity that does not change between polls.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use url::Url;

use crate::article::{Article, SourceRef, article_key, escape_html, mint_id, normalize_link, strip_forbidden};
use crate::config::{Source, canonical_language, is_language_tag};
use crate::html::{sanitize, text_of_sanitized, to_text};
use crate::store::Put;

/// Items read from one document; later ones are dropped (logged).
pub const MAX_ITEMS: usize = 1000;
const MAX_TITLE: usize = 1024;
const MAX_NAME: usize = 200;
const MAX_CONTENT: usize = 512 * 1024;
const MAX_SUMMARY: usize = 600;
const MAX_CATEGORIES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a feed: {0}")]
    NotAFeed(String),
    #[error("cannot parse the feed: {0}")]
    Parse(String),
}

/// Where a document came from and what the site adds to its items.
pub struct Context<'a> {
    pub source: &'a Source,
    /// The URL polled (the item attribution names it).
    pub polled: &'a Url,
    /// The base for relative links: Content-Location, else the final URL.
    pub base: &'a Url,
    pub charset: Option<&'a str>,
    pub authority: &'a str,
    pub site_language: &'a str,
    pub tz: Tz,
    pub now: DateTime<Utc>,
}

#[derive(Debug)]
pub struct Parsed {
    pub title: String,
    pub feed_id: String,
    pub site: Option<String>,
    /// RSS `<ttl>`: the origin asks not to be polled more often.
    pub ttl: Option<Duration>,
    pub items: Vec<Put>,
    /// What was repaired or dropped, for the log and the source's status.
    pub notes: Vec<String>,
}

pub fn parse(bytes: &[u8], cx: &Context) -> Result<Parsed, Error> {
    let mut notes = Vec::new();
    let (text, lossy) = decode(bytes, cx.charset);
    if lossy {
        notes.push("bytes invalid in the document's encoding were replaced by U+FFFD".to_string());
    }
    let text = sniff(&text)?;
    // The root's xml:base is the base for content HTML too (feed-rs applies it to links only).
    let doc_base = root_xml_base(&text).and_then(|b| cx.base.join(&b).ok()).unwrap_or_else(|| cx.base.clone());
    let tz = cx.tz;
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(cx.base.as_str()))
        .id_generator(|_, _, _| String::new())
        .timestamp_parser(move |s| super::dates::parse(s, tz))
        .sanitize_content(false)
        .build();
    let feed = parser.parse(text.as_bytes()).map_err(|e| match e {
        feed_rs::parser::ParseFeedError::ParseError(feed_rs::parser::ParseErrorKind::NoFeedRoot) => {
            Error::NotAFeed("the root element is not RSS, Atom or JSON Feed".into())
        }
        e => Error::Parse(e.to_string()),
    })?;
    Ok(convert(feed, cx, &doc_base, notes))
}

fn root_xml_base(text: &str) -> Option<String> {
    let root = root_start(text)?;
    let tag = &text[root..root + text[root..].find('>')?];
    let v = find_attr(tag, "xml:base")?;
    Some(tag[v.start + 1..v.end - 1].to_string())
}

/// Bytes -> UTF-8 text. The charset comes from the BOM, else the HTTP header, else the XML
/// declaration, else UTF-8; bytes that are valid UTF-8 while a declaration says UTF-8 are read as
/// UTF-8 whatever the other one says (a server default such as ISO-8859-1 is a common mistake). The
/// XML declaration is rewritten to say UTF-8. Returns whether bytes had to be replaced.
fn decode(bytes: &[u8], http: Option<&str>) -> (String, bool) {
    let declared = xml_encoding(bytes);
    let utf8_said = [http, declared.as_deref()].iter().any(|l| l.is_some_and(|l| l.eq_ignore_ascii_case("utf-8")));
    let (encoding, skip) = match encoding_rs::Encoding::for_bom(bytes) {
        Some((e, n)) => (e, n),
        None if utf8_said && std::str::from_utf8(bytes).is_ok() => (encoding_rs::UTF_8, 0),
        None => {
            let label = http.or(declared.as_deref());
            (label.and_then(|l| encoding_rs::Encoding::for_label(l.trim().as_bytes())).unwrap_or(encoding_rs::UTF_8), 0)
        }
    };
    let (text, lossy) = encoding.decode_without_bom_handling(&bytes[skip..]);
    let mut text = text.into_owned();
    let start = text.len() - text.trim_start().len();
    if text[start..].starts_with("<?xml")
        && let Some(end) = text[start..].find("?>")
    {
        text.replace_range(start..start + end + 2, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    }
    (text, lossy)
}

/// The `encoding` of an XML declaration (read as ASCII).
fn xml_encoding(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(256)];
    let head = String::from_utf8_lossy(head);
    let decl = &head[head.find("<?xml")?..];
    let decl = &decl[..decl.find("?>")?];
    let at = decl.find("encoding")? + "encoding".len();
    let rest = decl[at..].trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    Some(value[..value.find(quote)?].to_string())
}

/// Tells a feed from an HTML page (or anything else) before parsing, and repairs an `<rss>` root
/// whose `version` is missing or unknown (`2.01`, `0.94`): it is read as RSS 2.0.
fn sniff(text: &str) -> Result<std::borrow::Cow<'_, str>, Error> {
    let body = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    match body.chars().next() {
        Some('{') => return Ok(text.into()),
        Some('<') => {}
        None => return Err(Error::NotAFeed("the response is empty".into())),
        Some(_) => return Err(Error::NotAFeed("the response is neither XML nor JSON".into())),
    }
    let Some(root) = root_start(text) else {
        return Err(Error::NotAFeed("no root element".into()));
    };
    let tag = &text[root..];
    let name_end = tag[1..].find(|c: char| c.is_whitespace() || c == '>' || c == '/').map_or(tag.len(), |i| i + 1);
    let name = &tag[1..name_end];
    let lower = name.to_ascii_lowercase();
    if lower == "html" || text[..root].to_ascii_lowercase().contains("<!doctype html") {
        return Err(Error::NotAFeed(
            "the URL serves an HTML page, not a feed (look for its <link rel=\"alternate\">)".into(),
        ));
    }
    if name == "feed" && tag[..tag.find('>').unwrap_or(tag.len())].contains(ATOM_03) {
        return Ok(atom03_as_atom10(text).into());
    }
    if name != "rss" {
        return Ok(text.into());
    }
    let Some(close) = tag.find('>') else { return Ok(text.into()) };
    let start_tag = &tag[..close];
    let known = ["\"2.0\"", "'2.0'", "\"0.91\"", "'0.91'", "\"0.92\"", "'0.92'"];
    if let Some(v) = find_attr(start_tag, "version") {
        if known.iter().any(|k| start_tag[v.clone()].trim() == *k) {
            return Ok(text.into());
        }
        let mut out = text.to_string();
        out.replace_range(root + v.start..root + v.end, "\"2.0\"");
        return Ok(out.into());
    }
    let mut out = text.to_string();
    out.insert_str(root + name_end, " version=\"2.0\"");
    Ok(out.into())
}

const ATOM_03: &str = "http://purl.org/atom/ns#";

/// Atom 0.3 is read as Atom 1.0: its namespace, and the elements 1.0 renamed (`modified`,
/// `issued`, `tagline`, `copyright`), become 1.0's; the rest of 0.3 is 1.0's already.
fn atom03_as_atom10(text: &str) -> String {
    let mut out = text.replace(ATOM_03, "http://www.w3.org/2005/Atom");
    for (old, new) in
        [("modified", "updated"), ("issued", "published"), ("tagline", "subtitle"), ("copyright", "rights")]
    {
        for (o, n) in [("<", "<"), ("</", "</")] {
            for end in [">", " "] {
                out = out.replace(&format!("{o}{old}{end}"), &format!("{n}{new}{end}"));
            }
        }
    }
    out
}

/// Byte offset of the root element's `<`, past the prolog, comments, PIs and the DOCTYPE.
fn root_start(text: &str) -> Option<usize> {
    let mut i = 0;
    loop {
        let at = i + text[i..].find('<')?;
        let rest = &text[at..];
        if rest.starts_with("<?") {
            i = at + rest.find("?>")? + 2;
        } else if rest.starts_with("<!--") {
            i = at + rest.find("-->")? + 3;
        } else if rest.starts_with("<!") {
            // A DOCTYPE, possibly with an internal subset in brackets.
            let bracket = rest.find('[');
            let gt = rest.find('>')?;
            i = match bracket {
                Some(b) if b < gt => at + b + rest[b..].find("]")? + 1,
                _ => at + gt + 1,
            };
        } else {
            return Some(at);
        }
    }
}

/// The range of an attribute's quoted value in a start tag.
fn find_attr(tag: &str, name: &str) -> Option<std::ops::Range<usize>> {
    let mut from = 0;
    while let Some(i) = tag[from..].find(name).map(|i| from + i) {
        from = i + name.len();
        let before_ok = tag[..i].ends_with(char::is_whitespace);
        let rest = tag[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let value = rest[1..].trim_start();
        let q = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let start = tag.len() - value.len();
        let len = value[1..].find(q)? + 2;
        return Some(start..start + len);
    }
    None
}

fn convert(feed: feed_rs::model::Feed, cx: &Context, doc_base: &Url, mut notes: Vec<String>) -> Parsed {
    let title = feed.title.as_ref().map(|t| one_line(&t.content, MAX_TITLE)).filter(|t| !t.is_empty());
    let title = title.unwrap_or_else(|| cx.source.name.clone());
    let feed_id =
        Some(feed.id.trim()).filter(|i| is_absolute_iri(i)).map_or_else(|| cx.polled.to_string(), str::to_string);
    let site = feed
        .links
        .iter()
        .filter(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .filter_map(|l| http_url(&l.href))
        .find(|u| u != cx.polled.as_str());
    let via = SourceRef { name: cx.source.name.clone(), url: cx.polled.to_string(), title, feed_id, site };
    let feed_lang = feed.language.as_deref().filter(|l| is_language_tag(l)).map(canonical_language);
    let feed_authors: Vec<String> = feed
        .authors
        .iter()
        .filter_map(|p| p.name.as_deref())
        .map(|n| one_line(n, MAX_NAME))
        .filter(|n| !n.is_empty())
        .collect();
    if feed.entries.len() > MAX_ITEMS {
        notes.push(format!("{} items in the document; the first {MAX_ITEMS} were read", feed.entries.len()));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut items = Vec::new();
    for entry in feed.entries.into_iter().take(MAX_ITEMS) {
        let put = item(entry, cx, doc_base, &via, feed_lang.as_deref(), &feed_authors);
        // Two items with one guid in a document: the first keeps it, a different one is told apart
        // by its content; the very same item twice is read once.
        let origin = put.article.origin_id.clone().unwrap_or_default();
        let n = seen.entry(origin.clone()).or_default();
        *n += 1;
        if *n > 1 {
            let twin = items.iter().any(|p: &Put| {
                p.article.origin_id.as_deref() == Some(origin.as_str()) && p.article.digest == put.article.digest
            });
            if twin {
                continue;
            }
            let salt = blake3::hash(format!("{}\0{}", put.article.title, put.article.link).as_bytes()).to_hex();
            let id = format!("{origin}#{}", &salt[..12]);
            items.push(with_identity(put, &id, cx));
            notes.push(format!("two items share the id {origin:?}; the later one is kept as {id:?}"));
            continue;
        }
        items.push(put);
    }
    Parsed {
        title: via.title.clone(),
        feed_id: via.feed_id.clone(),
        site: via.site.clone(),
        ttl: feed.ttl.map(|m| Duration::from_secs(u64::from(m) * 60)),
        items,
        notes,
    }
}

fn item(
    entry: feed_rs::model::Entry,
    cx: &Context,
    doc_base: &Url,
    via: &SourceRef,
    feed_lang: Option<&str>,
    feed_authors: &[String],
) -> Put {
    let link = entry
        .links
        .iter()
        .filter(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .chain(entry.links.iter())
        .find_map(|l| http_url(&l.href));
    let is_text = |t: &feed_rs::model::Text| t.content_type.to_string().starts_with("text/plain");
    let (content_raw, content_is_text) = match &entry.content {
        Some(c) if c.body.as_deref().is_some_and(|b| !b.trim().is_empty()) => {
            (c.body.clone().unwrap_or_default(), c.content_type.to_string().starts_with("text/plain"))
        }
        _ => match &entry.summary {
            Some(s) => (s.content.clone(), is_text(s)),
            None => (String::new(), false),
        },
    };
    let content_raw = cut(&content_raw, MAX_CONTENT);
    let content_base = entry.base.as_deref().and_then(|b| doc_base.join(b).ok()).unwrap_or_else(|| doc_base.clone());
    let mut content_html = if content_is_text {
        let paras: Vec<String> = content_raw
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| format!("<p>{}</p>", escape_html(p)))
            .collect();
        paras.join("\n")
    } else {
        sanitize(strip_forbidden(content_raw).as_ref(), &content_base)
    };
    let content_text = text_of_sanitized(&content_html);
    // The summary: the item's own (as text), else the start of the content's text.
    let own_summary = entry.content.as_ref().and_then(|c| c.body.as_ref()).is_some_and(|b| !b.trim().is_empty());
    let mut summary = match (&entry.summary, own_summary) {
        (Some(s), true) => one_line(&s.content, MAX_SUMMARY * 4),
        _ => String::new(),
    };
    if summary.is_empty() {
        summary = content_text.clone();
    }
    let summary = shorten(&summary, MAX_SUMMARY);
    let mut title = entry.title.as_ref().map(|t| one_line(&t.content, MAX_TITLE)).unwrap_or_default();
    if title.is_empty() {
        title = shorten(&content_text, 110);
    }
    if title.is_empty() {
        title = link.clone().unwrap_or_else(|| "Untitled".into());
    }
    if content_text.is_empty() {
        content_html = format!("<p>{}</p>", escape_html(&title));
    }
    let mut authors: Vec<String> = entry
        .authors
        .iter()
        .filter_map(|p| p.name.as_deref())
        .map(|n| one_line(n, MAX_NAME))
        .filter(|n| !n.is_empty())
        .collect();
    if authors.is_empty() {
        authors = feed_authors.to_vec();
    }
    let mut categories: Vec<String> = Vec::new();
    for c in entry
        .categories
        .iter()
        .map(|c| one_line(c.label.as_deref().unwrap_or(&c.term), 100))
        .chain(cx.source.category.clone())
    {
        if !c.is_empty() && !categories.iter().any(|k| k.eq_ignore_ascii_case(&c)) && categories.len() < MAX_CATEGORIES
        {
            categories.push(c);
        }
    }
    let entry_lang = entry.language.as_deref().filter(|l| is_language_tag(l)).map(canonical_language);
    let language = cx
        .source
        .language
        .clone()
        .or(entry_lang)
        .or(feed_lang.map(str::to_string))
        .unwrap_or_else(|| cx.site_language.to_string());
    // Dates: the origin's, unless absent, before 1990 or in the future (then the time it was seen).
    let plausible = |d: &DateTime<Utc>| {
        *d >= Utc.with_ymd_and_hms(1990, 1, 1, 0, 0, 0).unwrap() && *d <= cx.now + chrono::Duration::minutes(5)
    };
    let origin_date = entry.published.or(entry.updated).filter(plausible);
    let published = origin_date.unwrap_or(cx.now);
    let updated = entry.updated.filter(plausible).filter(|u| *u >= published).unwrap_or(published);
    // Identity: the origin's id, else its link, else a hash of what it shows.
    let origin_id = match entry.id.trim() {
        "" => match &link {
            Some(l) => l.clone(),
            None => {
                let date = origin_date.map(|d| d.to_rfc3339()).unwrap_or_default();
                let h = blake3::hash(format!("{title}\0{date}\0{content_html}").as_bytes()).to_hex();
                format!("urn:siar:hash:{}", &h[..32])
            }
        },
        id => id.chars().take(2048).collect(),
    };
    let own_link = link.is_some();
    let article = Article {
        key: String::new(),
        id: String::new(),
        source: cx.source.name.clone(),
        slug: String::new(),
        title,
        link: link.unwrap_or_else(|| via.site.clone().unwrap_or_else(|| via.url.clone())),
        summary,
        content_html,
        authors,
        categories,
        tags: Vec::new(),
        language,
        published: published.fixed_offset(),
        updated,
        dateline: None,
        extra: Default::default(),
        origin: cx.polled.to_string(),
        digest: String::new(),
        version: 1,
        origin_id: None,
        via: Some(via.clone()),
        provenance: Vec::new(),
    };
    let put = Put::new(article, origin_date.is_some(), None, own_link);
    with_identity(put, &origin_id, cx)
}

/// Sets the identity derived from the origin id: key, slug, public id, digest.
fn with_identity(mut put: Put, origin_id: &str, cx: &Context) -> Put {
    let a = &mut put.article;
    let slug = blake3::hash(origin_id.as_bytes()).to_hex()[..24].to_string();
    a.key = article_key(&a.source, &slug);
    a.id = if is_absolute_iri(origin_id) && !origin_id.starts_with("urn:siar:") {
        origin_id.to_string()
    } else {
        mint_id(cx.authority, a.published, &a.source, &slug)
    };
    a.slug = slug;
    a.origin_id = Some(origin_id.to_string());
    a.digest = a.compute_digest();
    put
}

/// RFC 4287 asks republishers to keep an entry's id when it is an absolute IRI.
fn is_absolute_iri(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 2048
        && !s.contains(char::is_whitespace)
        && !crate::article::has_forbidden(s)
        && Url::parse(s).is_ok_and(|u| !u.scheme().is_empty() && (u.has_host() || u.cannot_be_a_base()))
}

fn http_url(s: &str) -> Option<String> {
    let u = Url::parse(s.trim()).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| normalize_link(&u))
}

/// Text of a field that may hold markup or entities, on one line, at most `max` bytes.
fn one_line(s: &str, max: usize) -> String {
    let t = to_text(&strip_forbidden(cut(s, max * 4)));
    cut(&t, max).trim().to_string()
}

/// At most `max` bytes, cut at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// At most `max` characters, cut at a word boundary with an ellipsis.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(a, _)| a).trim_end();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Source {
        let text = "[site]\ntitle = \"T\"\nlink = \"https://x.org/\"\n[[feed]]\nname = \"all\"\n[[source]]\nname = \"s\"\nurl = \"https://origin.example/feed\"\n";
        crate::config::Config::parse(text, std::path::Path::new("t.toml"), std::path::Path::new("/tmp"))
            .expect("config")
            .sources
            .remove(0)
    }

    fn run(bytes: &[u8], charset: Option<&str>) -> Result<Parsed, Error> {
        let src = source();
        let url = src.url.clone();
        let cx = Context {
            source: &src,
            polled: &url,
            base: &url,
            charset,
            authority: "x.org",
            site_language: "id",
            tz: chrono_tz::Asia::Jakarta,
            now: Utc::now(),
        };
        parse(bytes, &cx)
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let doc = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel><title>L</title><link>https://x.example/</link><description>d</description><item><title>Caf\xe9 \xff ok</title><link>https://x.example/c</link></item></channel></rss>";
        let p = run(doc, None).expect("parsed");
        // U+FFFD is among what siar never publishes (see article::is_forbidden).
        assert_eq!(p.items[0].article.title, "Caf ok");
        assert!(!p.notes.is_empty());
        let p = run(doc, Some("windows-1252")).expect("parsed");
        assert_eq!(p.items[0].article.title, "Café ÿ ok", "the HTTP charset is used when the bytes are not UTF-8");
    }
}
