//! `Article`: the one type every stage shares (ingest makes them, the store keeps them, publish
//! renders them), plus the small pure helpers that define identity: slugs, ids, links.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

/// The source name of articles from the drop folder.
pub const DROP_SOURCE: &str = "drop";

/// A stored article. `key` (source + slug) is its identity; `id` is the public id it is published
/// under, minted once and never changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Article {
    pub key: String,
    pub id: String,
    pub source: String,
    pub slug: String,
    pub title: String,
    pub link: String,
    /// Plain text.
    pub summary: String,
    /// Sanitized HTML.
    pub content_html: String,
    pub authors: Vec<String>,
    pub categories: Vec<String>,
    pub tags: Vec<String>,
    pub language: String,
    pub published: DateTime<FixedOffset>,
    pub updated: DateTime<Utc>,
    /// The dateline (place, outlet) recognised in a plain-text article.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dateline: Option<Dateline>,
    /// Header or front-matter keys siar does not interpret, kept as they were.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
    /// The file it came from (its name in the drop folder).
    pub origin: String,
    /// blake3 of the rendered fields; equal digests mean nothing a reader sees changed.
    pub digest: String,
    /// 1 for the first version, +1 for every stored change.
    pub version: u32,
    /// For an item of an external feed: the id its origin gave it (guid/id), or the link or
    /// content hash siar identified it by when it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_id: Option<String>,
    /// For an item of an external feed: the feed it came from (attribution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<SourceRef>,
    /// Other sources that carried the same story (cross-source duplicates), first seen first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<Provenance>,
    /// Media attached to the item (podcast audio, photos): RSS enclosures, Atom `rel="enclosure"`
    /// links, JSON Feed attachments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enclosures: Vec<Enclosure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enclosure {
    pub url: String,
    /// MIME type (`audio/mpeg`); `application/octet-stream` when the origin named none.
    pub mime: String,
    /// Size in bytes; 0 when unknown.
    pub length: u64,
}

/// The external feed an item came from, as published in the item's attribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// The `[[source]]` name.
    pub name: String,
    /// The feed URL polled (after permanent redirects).
    pub url: String,
    /// The origin feed's title.
    pub title: String,
    /// The origin feed's id (Atom id, else its URL).
    pub feed_id: String,
    /// The origin's web site (the feed's alternate link), when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

/// Another source that carried a story stored once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub source: String,
    pub url: String,
    pub origin_id: String,
    pub link: String,
    pub seen: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dateline {
    pub place: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlet: Option<String>,
}

impl Article {
    /// A minimal article for tests elsewhere in the crate.
    #[cfg(test)]
    pub fn sample(slug: &str, title: &str, published: &str, author: &str) -> Article {
        let published = DateTime::parse_from_rfc3339(published).expect("test date");
        let mut a = Article {
            key: article_key(DROP_SOURCE, slug),
            id: format!("tag:x.org,2026-01-01:{slug}"),
            source: DROP_SOURCE.into(),
            slug: slug.into(),
            title: title.into(),
            link: format!("https://x.org/{slug}"),
            summary: "Ringkas.".into(),
            content_html: format!("<p>{title}</p>"),
            authors: vec![author.into()],
            categories: vec![],
            tags: vec![],
            language: "id".into(),
            published,
            updated: published.with_timezone(&Utc),
            dateline: None,
            extra: BTreeMap::new(),
            origin: format!("{slug}.txt"),
            digest: String::new(),
            version: 1,
            origin_id: None,
            via: None,
            provenance: Vec::new(),
            enclosures: Vec::new(),
        };
        a.digest = a.compute_digest();
        a
    }

    /// The digest over everything a reader sees; dates of the file itself do not count.
    pub fn compute_digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        for part in [&self.title, &self.link, &self.summary, &self.content_html, &self.language] {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
        for list in [&self.authors, &self.categories, &self.tags] {
            for s in list {
                h.update(s.as_bytes());
                h.update(&[1]);
            }
            h.update(&[0]);
        }
        // Only when there are any, so digests of articles without media stay as they were.
        for e in &self.enclosures {
            h.update(format!("{}\0{}\0{}\0", e.url, e.mime, e.length).as_bytes());
        }
        h.finalize().to_hex()[..32].to_string()
    }
}

/// The identity key of an article: source and slug.
pub fn article_key(source: &str, slug: &str) -> String {
    format!("{source}/{slug}")
}

/// A stable public id: an RFC 4151 tag URI, dated by the article's first publication day so the
/// same article gets the same id when the store is rebuilt from `done/`.
pub fn mint_id(authority: &str, published: DateTime<FixedOffset>, source: &str, slug: &str) -> String {
    let day = published.with_timezone(&Utc).format("%Y-%m-%d");
    if source == DROP_SOURCE {
        format!("tag:{authority},{day}:{slug}")
    } else {
        format!("tag:{authority},{day}:{source}/{slug}")
    }
}

/// Builds an article's link from the `[ingest] article_link` template.
pub fn article_link(template: &str, site: &Url, slug: &str) -> String {
    template.replace("{site}", site.as_str()).replace("{slug}", slug)
}

/// Lower-case ASCII letters, digits and single hyphens; accented Latin letters lose their accents.
/// Returns an empty string when nothing usable is left.
pub fn slugify(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut dash = false;
    for c in s.chars().flat_map(char::to_lowercase) {
        let c = fold_accent(c);
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
    }
    out.truncate(120);
    out.trim_end_matches('-').to_string()
}

fn fold_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => 'a',
        'ç' | 'ć' | 'č' => 'c',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'ī' => 'i',
        'ñ' | 'ń' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'ū' => 'u',
        'ý' | 'ÿ' => 'y',
        'ß' => 's',
        'ž' | 'ź' | 'ż' => 'z',
        'š' | 'ś' => 's',
        _ => c,
    }
}

/// Removes characters that XML forbids (C0 controls other than tab, LF, CR) and those that feed
/// readers and HTML parsers reject although XML allows them (DEL, C1 controls, noncharacters,
/// U+FFFD, the mark of text already mangled by a bad decoding). Applied at ingest and again
/// before every render.
pub fn strip_forbidden(s: &str) -> std::borrow::Cow<'_, str> {
    if has_forbidden(s) { s.chars().filter(|&c| !is_forbidden(c)).collect::<String>().into() } else { s.into() }
}

pub fn is_forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
        || matches!(c, '\u{fdd0}'..='\u{fdef}' | '\u{fffd}')
        || (c as u32 & 0xFFFE) == 0xFFFE
}

/// The fast check (bytes, no decoding) that renders call on every field: chunks without an early
/// exit inside, so the compiler vectorizes the loop; only a chunk holding a byte that may start a
/// forbidden character (a control, DEL, the lead bytes of C1 controls, U+FDD0.., U+FFFx and the
/// supplementary planes) sends the rest of the string to the exact, per-character check.
pub fn has_forbidden(s: &str) -> bool {
    let b = s.as_bytes();
    let mut start = 0;
    for chunk in b.chunks(64) {
        let mut suspect = false;
        for &x in chunk {
            suspect |= ((x < 0x20) & (x != b'\t') & (x != b'\n') & (x != b'\r'))
                | (x == 0x7F)
                | (x == 0xC2)
                | (x == 0xEF)
                | (x >= 0xF0);
        }
        if suspect {
            let mut from = start;
            while !s.is_char_boundary(from) {
                from -= 1;
            }
            return s[from..].chars().any(is_forbidden);
        }
        start += chunk.len();
    }
    false
}

/// Percent-encodes the characters RFC 3986 does not allow in a URI but the `url` crate leaves as
/// they are (`| ^ { } \ `` ` `` and brackets outside an IPv6 host), so every published link is valid.
pub fn normalize_link(url: &url::Url) -> String {
    let s = url.as_str();
    let host_end = url.host_str().map_or(0, |h| s.find(h).map_or(0, |i| i + h.len()));
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    for (i, c) in s.char_indices() {
        match c {
            '|' | '^' | '{' | '}' | '\\' | '`' => out.push_str(&format!("%{:02X}", c as u32)),
            // A `%` that does not start an escape is a literal percent sign.
            '%' if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)) =>
            {
                out.push_str("%25")
            }
            '[' | ']' if i >= host_end => out.push_str(&format!("%{:02X}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

/// The link as a dedupe key: scheme, `www.`, fragment, tracking parameters and a trailing slash
/// do not make two links different. `None` for what is not an absolute http(s) URL.
pub fn link_key(link: &str) -> Option<String> {
    let u = Url::parse(link).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let host = u.host_str()?.trim_start_matches("www.").to_ascii_lowercase();
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = u.path().trim_end_matches('/');
    let query: Vec<String> = u
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("utm_") && !matches!(k.as_ref(), "fbclid" | "gclid" | "ref"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
    Some(format!("{host}{port}{path}{query}"))
}

/// Words of the body below this count never make two items the same story: boilerplate such as
/// "Read more" or "Selengkapnya" is shared by unrelated items.
const STORY_MIN_WORDS: usize = 40;

/// The story as a dedupe key: the title and the body's words (case, markup and spacing aside),
/// when the body is substantial.
pub fn story_key(a: &Article) -> Option<[u8; 32]> {
    if a.title.trim().is_empty() || count_words(&a.content_html) < STORY_MIN_WORDS {
        return None;
    }
    let mut h = blake3::Hasher::new();
    hash_words(&mut h, &a.title);
    h.update(&[0]);
    hash_words(&mut h, &a.content_html);
    Some(*h.finalize().as_bytes())
}

fn count_words(html: &str) -> usize {
    let mut n = 0;
    for_words(html, |_| n += 1);
    n
}

/// Hashes the words lower-cased, one space between them, without building the text.
fn hash_words(h: &mut blake3::Hasher, html: &str) {
    let mut buf = [0u8; 4];
    for_words(html, |w| {
        for c in w.chars().flat_map(char::to_lowercase) {
            h.update(c.encode_utf8(&mut buf).as_bytes());
        }
        h.update(b" ");
    });
}

/// Calls `f` with each word of an HTML fragment (tags dropped, entities left as they are).
fn for_words(html: &str, mut f: impl FnMut(&str)) {
    let mut rest = html;
    while !rest.is_empty() {
        let (text, tail) = match rest.find('<') {
            Some(i) => (&rest[..i], rest[i..].find('>').map_or("", |j| &rest[i + j + 1..])),
            None => (rest, ""),
        };
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).for_each(&mut f);
        rest = tail;
    }
}

/// Escapes text for HTML (element content and attribute values).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Surabaya Korpri"), "surabaya-korpri");
        assert_eq!(slugify("  Café — résumé!! 2026 "), "cafe-resume-2026");
        assert_eq!(slugify("--x--"), "x");
        assert_eq!(slugify("日本"), "");
    }

    #[test]
    fn tag_ids_are_dated_by_first_publication() {
        let p = DateTime::parse_from_rfc3339("2026-11-27T01:00:00+07:00").expect("date");
        assert_eq!(mint_id("news.example.org", p, DROP_SOURCE, "a-b"), "tag:news.example.org,2026-11-26:a-b");
    }

    #[test]
    fn forbidden_characters_go() {
        assert_eq!(strip_forbidden("a\u{0}b\u{b}c\u{fffe}\td\n"), "abc\td\n");
        assert!(has_forbidden(&format!("{}\u{ffff}", "x".repeat(63))), "across a chunk boundary");
        assert!(has_forbidden(&format!("{}\u{1f}", "é".repeat(100))));
        assert!(!has_forbidden("\u{feff}\u{efbf} “teks” biasa 😀 é\t\r\n"));
        assert_eq!(strip_forbidden("a\u{7f}b\u{85}c\u{fdd0}d\u{fffd}e\u{1fffe}f 😀"), "abcdef 😀");
    }

    #[test]
    fn links_are_valid_uris() {
        let u = |s: &str| normalize_link(&url::Url::parse(s).expect("url"));
        assert_eq!(u("https://x.org/a|b?q={1}^`\\[2]#f"), "https://x.org/a%7Cb?q=%7B1%7D%5E%60%5C%5B2%5D#f");
        assert_eq!(u("http://[::1]:8080/a"), "http://[::1]:8080/a");
        assert_eq!(u("https://x.org/berita/a-b"), "https://x.org/berita/a-b");
        assert_eq!(u("https://x.org/u?id=1&c=%d&e=%41"), "https://x.org/u?id=1&c=%25d&e=%41");
    }
}
