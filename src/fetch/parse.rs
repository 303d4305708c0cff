//! A fetched document -> articles. Tolerant reading (feed-rs for RSS 0.9x/1.0/2.0, Atom 0.3/1.0
//! and JSON Feed 1.x), strict output: every text field plain text, all HTML sanitized, every link
//! absolute, every item a stable identity that does not change between polls.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use url::Url;

use crate::article::{
    Article, Enclosure, SourceRef, article_key, escape_html, mint_id, normalize_link, strip_forbidden,
};
use crate::config::{Source, canonical_language, is_language_tag};
use crate::html::{html_nesting, sanitize, text_of_sanitized, to_text};
use crate::store::Put;

/// Items read from one document; later ones are dropped (logged).
pub const MAX_ITEMS: usize = 1000;
const MAX_TITLE: usize = 1024;
const MAX_NAME: usize = 200;
const MAX_CONTENT: usize = 512 * 1024;
const MAX_SUMMARY: usize = 600;
const MAX_CATEGORIES: usize = 20;
const MAX_ENCLOSURES: usize = 10;
/// Content HTML nested deeper than this is published as text.
const MAX_NESTING: usize = 100;

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

/// Bytes -> UTF-8 text. The charset: a BOM; else UTF-16 recognised by its first characters (XML
/// spec, appendix F); else UTF-8 when the bytes are valid UTF-8 (whatever a declaration says: a
/// wrong server default such as ISO-8859-1 is far more common than Latin-1 text that happens to
/// be valid UTF-8); else the first non-UTF-8 charset named by the HTTP header or the XML
/// declaration; else a guess from the bytes (chardetng). The XML declaration is rewritten to say
/// UTF-8. Returns whether bytes had to be replaced.
fn decode(bytes: &[u8], http: Option<&str>) -> (String, bool) {
    let (encoding, skip) = match encoding_rs::Encoding::for_bom(bytes) {
        Some((e, n)) => (e, n),
        None if bytes.starts_with(&[0x3c, 0, 0x3f, 0]) => (encoding_rs::UTF_16LE, 0),
        None if bytes.starts_with(&[0, 0x3c, 0, 0x3f]) => (encoding_rs::UTF_16BE, 0),
        None if std::str::from_utf8(bytes).is_ok() => (encoding_rs::UTF_8, 0),
        None => {
            let declared = xml_encoding(bytes);
            let named = [http, declared.as_deref()]
                .into_iter()
                .flatten()
                .filter_map(|l| encoding_rs::Encoding::for_label(l.trim().as_bytes()))
                .find(|e| *e != encoding_rs::UTF_8 && *e != encoding_rs::UTF_16LE && *e != encoding_rs::UTF_16BE);
            let guess = || {
                let mut d = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
                d.feed(bytes, true);
                d.guess(None, chardetng::Utf8Detection::Deny)
            };
            (named.unwrap_or_else(guess), 0)
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
        Some('{') => return Ok(json_feed(text).into()),
        Some('[') => return Err(Error::NotAFeed("JSON, but an array, not a JSON Feed object".into())),
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
    if lower.ends_with("rdf") && text.contains(RSS_090) {
        return Ok(text.replace(RSS_090, "http://purl.org/rss/1.0/").into());
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
/// RSS 0.90 is RDF like RSS 1.0, in another namespace.
const RSS_090: &str = "http://my.netscape.com/rdf/simple/0.9/";

/// JSON Feed 1.1 asks readers to take a numeric item id as a string; feed-rs refuses the whole
/// document for it, so ids are made strings first.
fn json_feed(text: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(text) else { return text.to_string() };
    let mut changed = false;
    if let Some(items) = v.get_mut("items").and_then(|i| i.as_array_mut()) {
        for item in items {
            if let Some(id) = item.get_mut("id")
                && (id.is_number() || id.is_boolean())
            {
                *id = serde_json::Value::String(id.to_string());
                changed = true;
            }
        }
    }
    if changed { v.to_string() } else { text.to_string() }
}

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
    let feed_id = public_id(feed.id.trim()).unwrap_or_else(|| cx.polled.to_string());
    let site = feed
        .links
        .iter()
        .filter(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .filter_map(|l| http_url(&l.href))
        .find(|u| u != cx.polled.as_str());
    let via = SourceRef { name: cx.source.name.clone(), url: cx.polled.to_string(), title, feed_id, site };
    let feed_lang = feed.language.as_deref().and_then(language);
    let feed_authors: Vec<String> = feed.authors.iter().filter_map(person).collect();
    // Atom text constructs of type text, and JSON Feed titles, are plain text already: taken
    // literally. RSS titles may hold escaped markup and entities (readers treat them as HTML).
    let kind = feed.feed_type.clone();
    if feed.entries.len() > MAX_ITEMS {
        notes.push(format!("{} items in the document; the first {MAX_ITEMS} were read", feed.entries.len()));
    }
    let puts: Vec<Put> = feed
        .entries
        .into_iter()
        .take(MAX_ITEMS)
        .map(|e| item(e, cx, doc_base, &via, feed_lang.as_deref(), &feed_authors, &kind))
        .collect();
    // Items sharing a guid in a document: the very same item twice is read once; different ones
    // are told apart by their content. Which one keeps the bare guid does not depend on their
    // order (the one whose link is the guid, else the smallest content hash), so a reordered
    // document gives the same identities.
    let salt =
        |p: &Put| blake3::hash(format!("{}\0{}", p.article.title, p.article.link).as_bytes()).to_hex().to_string();
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, p) in puts.iter().enumerate() {
        groups.entry(p.article.origin_id.clone().unwrap_or_default()).or_default().push(i);
    }
    let mut items = Vec::with_capacity(puts.len());
    let mut keep: HashMap<usize, Option<String>> = HashMap::new();
    for (origin, idx) in &groups {
        if idx.len() == 1 {
            keep.insert(idx[0], None);
            continue;
        }
        let mut distinct: Vec<usize> = Vec::new();
        for &i in idx {
            if !distinct.iter().any(|&j| puts[j].article.digest == puts[i].article.digest) {
                distinct.push(i);
            }
        }
        let keeper = distinct
            .iter()
            .copied()
            .find(|&i| puts[i].article.link == *origin)
            .or_else(|| distinct.iter().copied().min_by_key(|&i| salt(&puts[i])));
        for &i in &distinct {
            if Some(i) == keeper {
                keep.insert(i, None);
            } else {
                let id = format!("{origin}#{}", &salt(&puts[i])[..12]);
                notes.push(format!("two items share the id {origin:?}; one is kept as {id:?}"));
                keep.insert(i, Some(id));
            }
        }
    }
    for (i, put) in puts.into_iter().enumerate() {
        match keep.remove(&i) {
            None => {}
            Some(None) => items.push(put),
            Some(Some(id)) => items.push(with_identity(put, &id, cx)),
        }
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
    kind: &feed_rs::model::FeedType,
) -> Put {
    let content_base = entry.base.as_deref().and_then(|b| doc_base.join(b).ok()).unwrap_or_else(|| doc_base.clone());
    // Enclosures: Atom rel="enclosure" links, JSON Feed attachments (links with a type), RSS
    // enclosures and Media RSS content (feed-rs puts those under media).
    let is_enclosure = |l: &feed_rs::model::Link| {
        l.rel.as_deref() == Some("enclosure") || (*kind == feed_rs::model::FeedType::JSON && l.media_type.is_some())
    };
    let mut enclosures: Vec<Enclosure> = Vec::new();
    let linked =
        entry.links.iter().filter(|l| is_enclosure(l)).map(|l| (l.href.clone(), l.media_type.clone(), l.length));
    let media =
        entry.media.iter().flat_map(|m| &m.content).filter_map(|c| {
            Some((c.url.as_ref()?.to_string(), c.content_type.as_ref().map(|t| t.to_string()), c.size))
        });
    for (href, mime, length) in linked.chain(media) {
        let Some(url) = resolve(&href, &content_base) else { continue };
        let mime = mime.filter(|m| is_mime(m)).unwrap_or_else(|| "application/octet-stream".into());
        if enclosures.len() < MAX_ENCLOSURES && !enclosures.iter().any(|e| e.url == url) {
            enclosures.push(Enclosure { url, mime, length: length.unwrap_or(0) });
        }
    }
    let link = entry
        .links
        .iter()
        .filter(|l| !is_enclosure(l))
        .filter(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .chain(entry.links.iter().filter(|l| !is_enclosure(l)))
        .find_map(|l| resolve(&l.href, &content_base));
    // Atom's typed text and JSON Feed titles are taken literally; JSON Feed summaries are often
    // HTML in practice, so they are read as RSS titles are.
    let text_field = |t: &feed_rs::model::Text, max: usize, summary: bool| {
        let literal = match kind {
            feed_rs::model::FeedType::Atom => true,
            feed_rs::model::FeedType::JSON => !summary,
            _ => false,
        };
        if literal && t.content_type.to_string().starts_with("text/plain") {
            let t = strip_forbidden(cut(&t.content, max * 4)).split_whitespace().collect::<Vec<_>>().join(" ");
            cut(&t, max).trim().to_string()
        } else {
            one_line(&t.content, max)
        }
    };
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
    let content_raw = cut_markup(&content_raw, MAX_CONTENT);
    // HTML nested deeper than readers show (the sanitizer's parser takes time quadratic in the
    // depth), or that grows past the cap once its tags are closed, is published as its text.
    let mut content_html = if content_is_text {
        paragraphs(content_raw)
    } else if html_nesting(content_raw) > MAX_NESTING {
        capped_paragraphs(&text_of_sanitized(content_raw))
    } else {
        let clean = sanitize(strip_forbidden(content_raw).as_ref(), &content_base);
        if clean.len() > MAX_CONTENT { capped_paragraphs(&text_of_sanitized(&clean)) } else { clean }
    };
    let content_text = text_of_sanitized(&content_html);
    // The summary: the item's own (as text), else the start of the content's text.
    let own_summary = entry.content.as_ref().and_then(|c| c.body.as_ref()).is_some_and(|b| !b.trim().is_empty());
    let mut summary = match (&entry.summary, own_summary) {
        (Some(s), true) => text_field(s, MAX_SUMMARY * 4, true),
        _ => String::new(),
    };
    if summary.is_empty() {
        summary = content_text.clone();
    }
    let summary = shorten(&summary, MAX_SUMMARY);
    let mut title = entry.title.as_ref().map(|t| text_field(t, MAX_TITLE, false)).unwrap_or_default();
    if title.is_empty() {
        title = shorten(&content_text, 110);
    }
    if title.is_empty() {
        title = link.clone().unwrap_or_else(|| "Untitled".into());
    }
    // Nothing to show (an image-only post still shows its image): the title stands in.
    if content_html.trim().is_empty() {
        content_html = format!("<p>{}</p>", escape_html(&title));
    }
    let mut authors: Vec<String> = entry.authors.iter().filter_map(person).collect();
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
    let entry_lang = entry.language.as_deref().and_then(language);
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
        enclosures,
    };
    let put = Put::new(article, origin_date.is_some(), None, own_link);
    with_identity(put, &origin_id, cx)
}

/// Sets the identity derived from the origin id: key, slug, public id, digest.
fn with_identity(mut put: Put, origin_id: &str, cx: &Context) -> Put {
    let a = &mut put.article;
    let slug = blake3::hash(origin_id.as_bytes()).to_hex()[..24].to_string();
    a.key = article_key(&a.source, &slug);
    a.id = public_id(origin_id).unwrap_or_else(|| mint_id(cx.authority, a.published, &a.source, &slug));
    a.slug = slug;
    a.origin_id = Some(origin_id.to_string());
    a.digest = a.compute_digest();
    put
}

/// The id an origin's item (or feed) keeps when republished: RFC 4287 asks republishers to keep
/// an entry's id when it is an absolute IRI. Kept: http(s) URLs (written as URIs: non-ASCII and
/// stray `%` percent-encoded), `tag:` URIs and well-formed `urn:` URNs. Anything else (`12345`,
/// `javascript:…`, `urn:x:1`) gets a minted `tag:` id instead.
fn public_id(s: &str) -> Option<String> {
    if s.is_empty() || s.len() > 2048 || s.contains(char::is_whitespace) || crate::article::has_forbidden(s) {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return http_url(s).and_then(|u| canonical_escapes(&u));
    }
    if !s.is_ascii() {
        return None;
    }
    if let Some(rest) = lower.strip_prefix("urn:") {
        let (nid, nss) = rest.split_once(':')?;
        let nid_ok = (2..=32).contains(&nid.len())
            && nid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !nid.starts_with('-')
            && nid != "siar";
        return (nid_ok && !nss.is_empty()).then(|| s.to_string());
    }
    if let Some(rest) = s.strip_prefix("tag:") {
        // RFC 4151: tag:<lower-case DNS name or e-mail>,<YYYY[-MM[-DD]]>:<specific>.
        let (entity, specific) = rest.split_once(':')?;
        let (authority, date) = entity.rsplit_once(',')?;
        let authority_ok = !authority.is_empty()
            && authority.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.@_".contains(&b));
        let date_ok = matches!(date.len(), 4 | 7 | 10)
            && date.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        let specific_ok = !specific.is_empty() && !specific.contains('%');
        return (authority_ok && date_ok && specific_ok).then(|| s.to_string());
    }
    None
}

/// A URI's percent-escapes in the canonical form validators expect (upper-case hex, unreserved
/// characters unescaped); `None` when they do not decode to UTF-8 (the id is minted instead).
fn canonical_escapes(u: &str) -> Option<String> {
    if !u.contains('%') {
        return Some(u.to_string());
    }
    let b = u.as_bytes();
    let mut out = String::with_capacity(u.len());
    let mut decoded: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
            let v = u8::from_str_radix(hex, 16).ok()?;
            decoded.push(v);
            if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                out.push(v as char);
            } else {
                out.push_str(&format!("%{v:02X}"));
            }
            i += 3;
        } else {
            decoded.push(b[i]);
            out.push(b[i] as char);
            i += 1;
        }
    }
    std::str::from_utf8(&decoded).ok()?;
    Some(out)
}

/// `type/subtype` with token characters: what RSS, Atom and JSON Feed accept as a media type.
fn is_mime(m: &str) -> bool {
    let token = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b));
    m.len() <= 127
        && m.split_once('/').is_some_and(|(a, b)| token(a) && token(b.split(';').next().unwrap_or_default().trim()))
}

/// A language tag as feeds write it (`en_US`, `EN-us`, `in`): canonical, or `None`.
fn language(l: &str) -> Option<String> {
    let l = l.trim().replace('_', "-");
    is_language_tag(&l).then(|| canonical_language(&l))
}

/// A person's name for publishing: never an e-mail address (`a@b.c (Name)` gives `Name`; an
/// address alone gives nothing).
fn person(p: &feed_rs::model::Person) -> Option<String> {
    let raw = p.name.as_deref()?;
    let mut name = one_line(raw, MAX_NAME);
    if let (Some(open), true) = (name.find('('), name.ends_with(')'))
        && name[..open].contains('@')
    {
        name = name[open + 1..name.len() - 1].trim().to_string();
    }
    if let Some(lt) = name.find('<')
        && name[lt..].contains('@')
    {
        name = name[..lt].trim().to_string();
    }
    let words: Vec<&str> = name.split_whitespace().filter(|w| !w.contains('@')).collect();
    let name = words.join(" ");
    (!name.is_empty()).then_some(name)
}

/// Plain text as HTML paragraphs, shortened until the HTML fits the content cap (escaping can
/// make it up to six times longer than the text).
fn capped_paragraphs(text: &str) -> String {
    let mut text = cut(text, MAX_CONTENT);
    loop {
        let html = paragraphs(text);
        if html.len() <= MAX_CONTENT {
            return html;
        }
        text = cut(text, text.len() * 3 / 4);
    }
}

/// Plain text as HTML paragraphs (blank lines separate them).
fn paragraphs(text: &str) -> String {
    let paras: Vec<String> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| format!("<p>{}</p>", escape_html(p)))
        .collect();
    paras.join("\n")
}

/// An absolute or relative http(s) reference, resolved against `base` and normalized.
fn resolve(href: &str, base: &Url) -> Option<String> {
    base.join(href.trim()).ok().and_then(|u| http_url(u.as_str()))
}

fn http_url(s: &str) -> Option<String> {
    let u = Url::parse(s.trim()).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| normalize_link(&u))
}

/// Text of a field that may hold markup or entities, on one line, at most `max` bytes.
fn one_line(s: &str, max: usize) -> String {
    let t = to_text(&strip_forbidden(cut_markup(s, max * 4)));
    cut(&t, max).trim().to_string()
}

/// At most `max` bytes of markup, cut before a tag or reference the cut would split.
fn cut_markup(s: &str, max: usize) -> &str {
    let c = cut(s, max);
    if c.len() == s.len() {
        return c;
    }
    let open_tag = c.rfind('<').filter(|&i| !c[i..].contains('>'));
    let open_ref = c.rfind('&').filter(|&i| !c[i..].contains(';') && c.len() - i < 12);
    match open_tag.into_iter().chain(open_ref).min() {
        Some(i) => &c[..i],
        None => c,
    }
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
    fn charsets_bytes_first_then_declarations_then_a_guess() {
        let doc = |decl: &str, title: &[u8]| {
            let mut d = format!("<?xml version=\"1.0\" encoding=\"{decl}\"?><rss version=\"2.0\"><channel><title>L</title><link>https://x.example/</link><description>d</description><item><title>").into_bytes();
            d.extend_from_slice(title);
            d.extend_from_slice(b"</title><link>https://x.example/c</link></item></channel></rss>");
            d
        };
        let title = |bytes: &[u8], http: Option<&str>| run(bytes, http).expect("parsed").items[0].article.title.clone();
        // Not UTF-8 although declared so: the bytes are guessed (windows-1252 here).
        assert_eq!(title(&doc("utf-8", b"Caf\xe9 \xff ok"), None), "Caf\u{e9} \u{ff} ok");
        // UTF-8 bytes under a wrong legacy declaration stay UTF-8 (no mojibake).
        assert_eq!(title(&doc("ISO-8859-1", "café".as_bytes()), None), "café");
        // HTTP says UTF-8, the bytes are not, the declaration names their charset.
        assert_eq!(title(&doc("windows-1252", b"Caf\xe9 \x92"), Some("utf-8")), "Caf\u{e9} \u{2019}");
        // UTF-8 declared UTF-16 is read as what it is.
        assert_eq!(title(&doc("UTF-16", b"plain"), None), "plain");
        // UTF-16LE without a BOM, recognised by its first characters.
        let utf16: Vec<u8> = String::from_utf8(doc("utf-16", "Kopi ☕".as_bytes()))
            .expect("utf8")
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(title(&utf16, None), "Kopi ☕");
    }

    fn rss_items(items: &str) -> Vec<u8> {
        format!("<rss version=\"2.0\"><channel><title>T</title><link>https://x.example/</link><description>d</description>{items}</channel></rss>").into_bytes()
    }

    #[test]
    fn kept_ids_are_valid_uris_others_are_minted() {
        assert_eq!(public_id("https://x.example/a b"), None);
        assert_eq!(public_id("http://exämple.org/ü?x=1").as_deref(), Some("http://xn--exmple-cua.org/%C3%BC?x=1"));
        assert_eq!(public_id("https://x.example/u?c=%d").as_deref(), Some("https://x.example/u?c=%25d"));
        assert_eq!(
            public_id("urn:uuid:60a76c80-d399-11d9-b93c-0003939e0af6").as_deref(),
            Some("urn:uuid:60a76c80-d399-11d9-b93c-0003939e0af6")
        );
        assert_eq!(public_id("tag:x.org,2026:a").as_deref(), Some("tag:x.org,2026:a"));
        assert_eq!(
            public_id("https://u.example/%7euser/%e2%82%ac").as_deref(),
            Some("https://u.example/~user/%E2%82%AC")
        );
        for bad in [
            "urn:x:pf1",
            "javascript:alert(1)",
            "12345",
            "mailto:a@b.c",
            "urn:siar:hash:1",
            "tag:nodate:x",
            "tag:Example.COM,2026:x",
            "tag:example.com,2026:x%y",
            "https://u2.example/%E0%A4",
        ] {
            assert_eq!(public_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn atom_plain_text_is_taken_literally() {
        let atom = br#"<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427</id><updated>2026-11-27T00:00:00Z</updated>
<entry><title type="text">Why 5 &lt; 6 and &lt;html&gt; tags &amp; more</title><id>urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca428</id><updated>2026-11-27T00:00:00Z</updated>
<summary type="text">Use &lt;script&gt; carefully</summary><content type="html">&lt;p&gt;x&lt;/p&gt;</content></entry>
<entry><title type="html">&lt;b&gt;Bold&lt;/b&gt; &amp;amp; co</title><id>urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca429</id><updated>2026-11-27T00:00:00Z</updated></entry></feed>"#;
        let p = run(atom, None).expect("parsed");
        assert_eq!(p.items[0].article.title, "Why 5 < 6 and <html> tags & more");
        assert_eq!(p.items[0].article.summary, "Use <script> carefully");
        assert_eq!(p.items[1].article.title, "Bold & co", "type=html is HTML");
    }

    #[test]
    fn names_never_publish_addresses_and_languages_are_canonical() {
        let p = |n: &str| person(&feed_rs::model::Person { name: Some(n.into()), uri: None, email: None, role: None });
        assert_eq!(p("a@b.c (Name Here)").as_deref(), Some("Name Here"));
        assert_eq!(p("Name Here <a@b.c>").as_deref(), Some("Name Here"));
        assert_eq!(p("just@email.example"), None);
        assert_eq!(p("Ani &amp; Budi").as_deref(), Some("Ani & Budi"));
        assert_eq!(language("en_US").as_deref(), Some("en-US"));
        assert_eq!(language("in").as_deref(), Some("id"));
        assert_eq!(language("english"), None);
    }

    #[test]
    fn items_sharing_a_guid_keep_their_identities_in_any_order() {
        let a = "<item><guid>same</guid><title>Alpha</title><link>https://x.example/a</link></item>";
        let b = "<item><guid>same</guid><title>Beta</title><link>https://x.example/b</link></item>";
        let keys = |doc: &[u8]| {
            let mut v: Vec<(String, String)> =
                run(doc, None).expect("parsed").items.into_iter().map(|p| (p.article.title, p.article.key)).collect();
            v.sort();
            v
        };
        let ab = keys(&rss_items(&format!("{a}{b}")));
        assert_eq!(ab.len(), 2);
        assert_ne!(ab[0].1, ab[1].1);
        assert_eq!(keys(&rss_items(&format!("{b}{a}"))), ab, "reordering changes nothing");
        assert_eq!(keys(&rss_items(&format!("{a}{a}"))).len(), 1, "the very same item twice is one");
    }

    #[test]
    fn pathological_html_is_published_as_text_quickly() {
        let deep = format!(
            "<item><title>Dalam</title><link>https://x.example/d</link><description>{}x</description></item>",
            "&lt;div&gt;".repeat(100_000)
        );
        let started = std::time::Instant::now();
        let p = run(&rss_items(&deep), None).expect("parsed");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(p.items[0].article.content_html, "<p>x</p>");
        for junk in [
            "&lt; ".repeat(200_000),
            "&lt;p&gt;".to_string() + &"&amp;nbsp;".repeat(100_000),
            "&quot;\"".repeat(150_000),
        ] {
            let doc = format!(
                "<item><title>J</title><link>https://x.example/j</link><description>{junk}</description></item>"
            );
            let started = std::time::Instant::now();
            let p = run(&rss_items(&doc), None).expect("parsed");
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
            let html = &p.items[0].article.content_html;
            assert!(html.len() <= MAX_CONTENT, "{}", html.len());
            let tail = &html[html.len().saturating_sub(12)..];
            assert!(!tail.contains("&amp;a") && !tail.contains("&amp;n"), "no reference cut in two: {tail}");
        }
        let bold = format!(
            "<item><title>Tebal</title><link>https://x.example/b</link><description>{}</description></item>",
            "&lt;b&gt;".repeat(60_000) + "y"
        );
        let p = run(&rss_items(&bold), None).expect("parsed");
        assert!(p.items[0].article.content_html.len() <= MAX_CONTENT, "the cap holds after tags are closed");
    }

    #[test]
    fn image_only_posts_keep_their_image_and_json_ids_may_be_numbers() {
        let img = "<item><title>Komik</title><link>https://x.example/k</link><description>&lt;p&gt;&lt;img src=\"https://x.example/k.png\" alt=\"Komik\"&gt;&lt;/p&gt;</description></item>";
        let p = run(&rss_items(img), None).expect("parsed");
        assert!(p.items[0].article.content_html.contains("k.png"), "{}", p.items[0].article.content_html);
        let json = br#"{"version":"https://jsonfeed.org/version/1.1","title":"J","items":[{"id":7,"url":"/rel/7","title":"Tujuh <b>x</b>"},{"id":"8","content_text":"Delapan"}]}"#;
        let p = run(json, None).expect("a numeric id does not sink the feed");
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.items[0].article.origin_id.as_deref(), Some("7"));
        assert_eq!(p.items[0].article.link, "https://origin.example/rel/7", "relative item URLs are resolved");
        assert_eq!(p.items[0].article.title, "Tujuh <b>x</b>", "JSON titles are plain text, taken literally");
        let rss090 = br#"<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://my.netscape.com/rdf/simple/0.9/"><channel><title>Old</title><link>https://o.example/</link><description>d</description></channel><item><title>RSS 0.90</title><link>https://o.example/1</link></item></rdf:RDF>"#;
        assert_eq!(run(rss090, None).expect("parsed").items.len(), 1);
        assert!(matches!(run(b"[1,2,3]", None), Err(Error::NotAFeed(m)) if m.contains("array")));
    }
}
