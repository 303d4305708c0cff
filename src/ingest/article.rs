//! Drop file -> `Article`: decode, pick the parser by extension, then resolve header or front-matter
//! keys against what was derived from the text. Pure: bytes, name and times in; article or reason out.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use url::Url;

use super::{Draft, Reject, decode, markdown, text};
use crate::article::{
    Article, DROP_SOURCE, article_key, article_link, mint_id, normalize_link, slugify, strip_forbidden,
};
use crate::config::{Config, canonical_language, is_language_tag};

/// Longest title kept, in characters.
const TITLE_LIMIT: usize = 1024;
/// At most this many categories, and as many tags, per article.
const LIST_LIMIT: usize = 100;
/// News is dated after this (earlier dates are typos such as 0026 or 1926, or a reset clock).
const EARLIEST: &str = "1990-01-01T00:00:00Z";
/// A date this far ahead of the clock is clamped to the time of ingest.
const FUTURE_SLACK: chrono::Duration = chrono::Duration::minutes(10);

/// What ingest hands the store: the article and what the store needs to merge it with an earlier version.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub article: Article,
    /// The article named its own date (a header or front matter), so an update may move it.
    pub explicit_date: bool,
    /// blake3 of the file's bytes: the same bytes dropped again are a duplicate.
    pub file_hash: [u8; 32],
}

/// Builds the article for the drop file `name` with these bytes and modification time, at `now`.
pub fn build(
    cfg: &Config,
    name: &str,
    bytes: &[u8],
    mtime: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Incoming, Reject> {
    let file_hash = *blake3::hash(bytes).as_bytes();
    let (decoded, _encoding) = decode::decode(bytes)?;
    let normalized = normalize(&decoded);
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let draft = match ext.as_str() {
        "md" | "markdown" => markdown::parse(&normalized)?,
        _ => text::parse(&normalized)?,
    };
    let (article, explicit_date) = resolve(cfg, name, draft, mtime, now, &file_hash)?;
    Ok(Incoming { article, explicit_date, file_hash })
}

/// Strips a BOM, makes line ends LF, turns form feeds into line breaks and other control
/// characters into spaces (so words they separated stay apart), and drops what feeds cannot carry.
fn normalize(s: &str) -> String {
    let s = s.strip_prefix('\u{feff}').unwrap_or(s);
    let s = s.replace("\r\n", "\n").replace(['\r', '\u{c}', '\u{85}', '\u{2028}', '\u{2029}'], "\n");
    let s: String = s.chars().map(|c| if c.is_control() && c != '\n' && c != '\t' { ' ' } else { c }).collect();
    strip_forbidden(&s).into_owned()
}

/// Category or tag names as text: no control characters, nothing tag-like, no blanks.
fn labels(list: Vec<String>) -> Vec<String> {
    list.iter().map(|l| author_name(l)).filter(|l| l.chars().any(char::is_alphanumeric)).collect()
}

/// An author as given, without an e-mail address in angle brackets or anything tag-like
/// (feeds carry names; readers take `<b>` in a name for markup). A `<` that starts no tag stays.
fn author_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let starts_tag = after.starts_with(|c: char| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'));
        match after.find(['<', '>']) {
            Some(close) if starts_tag && after.as_bytes()[close] == b'>' => rest = &after[close + 1..],
            _ => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    clean(&out)
}

/// Whether text shows anything: a letter, digit or symbol, not only spaces and zero-width marks.
fn visible(s: &str) -> bool {
    s.chars().any(|c| {
        !c.is_whitespace() && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{ad}')
    })
}

/// The text of an HTML fragment, for telling whether a body shows anything.
fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ").replace("&#8203;", "")
}

/// A one-line text field from a header or front matter: control characters (which YAML and TOML
/// escapes can produce) become spaces, what feeds cannot carry goes, white space collapses.
fn clean(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let s = strip_forbidden(&s);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn resolve(
    cfg: &Config,
    name: &str,
    draft: Draft,
    mtime: DateTime<Utc>,
    now: DateTime<Utc>,
    hash: &[u8; 32],
) -> Result<(Article, bool), Reject> {
    let meta = &draft.meta;
    if meta.get("draft").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "yes") {
        return Err(Reject::new(
            "draft",
            "the front matter says draft: true; set it to false (or remove it) and drop the file again",
        ));
    }
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let mut slug = meta.get("slug").map(slugify).filter(|s| !s.is_empty()).unwrap_or_else(|| slugify(stem));
    if slug.is_empty() {
        slug = format!("a-{}", &blake3::Hash::from(*hash).to_hex()[..12]);
    }
    let tz = cfg.site.timezone;
    let (published, explicit_date) = match meta.get("date") {
        Some(d) => (
            parse_date(d, tz).ok_or_else(|| {
                Reject::new(
                    "bad-date",
                    format!(
                        "Date: {d:?} is not a date; expected RFC 3339 (2026-11-27T08:30:00+07:00), \
                         RFC 2822 (Fri, 27 Nov 2026 08:30:00 +0700) or \"2026-11-27 08:30\" ({tz} time)"
                    ),
                )
            })?,
            true,
        ),
        None => (mtime.with_timezone(&tz).fixed_offset(), false),
    };
    let earliest = DateTime::parse_from_rfc3339(EARLIEST).expect("a valid constant");
    let mut extra_date = None;
    let published = if published < earliest {
        if explicit_date {
            return Err(Reject::new(
                "bad-date",
                format!("Date: {:?} is before 1990; check the year", meta.get("date").unwrap_or_default()),
            ));
        }
        now.with_timezone(&tz).fixed_offset() // a file time from a reset clock
    } else if explicit_date && published > now + chrono::Duration::days(366) {
        return Err(Reject::new(
            "bad-date",
            format!("Date: {:?} is more than a year ahead; check the year", meta.get("date").unwrap_or_default()),
        ));
    } else if published > now + FUTURE_SLACK {
        // siar publishes what arrives; a date in the future is not a schedule.
        if explicit_date {
            extra_date = meta.get("date").map(str::to_string);
        }
        now.with_timezone(&tz).fixed_offset()
    } else {
        published
    };
    // Whole seconds: RSS dates carry no fractions, and all three formats must say the same.
    let published = published.with_nanosecond(0).unwrap_or(published);
    let language = match meta.get("lang") {
        Some(l) if is_language_tag(l) => canonical_language(l),
        Some(l) => {
            return Err(Reject::new(
                "bad-lang",
                format!("Lang: {l:?} is not a language tag; expected e.g. \"id\" or \"en\""),
            ));
        }
        None => cfg.site.language.clone(),
    };
    let link = match meta.get("link") {
        Some(l) => match Url::parse(l) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => normalize_link(&u),
            _ => return Err(Reject::new("bad-link", format!("Link: {l:?} is not an absolute http(s) URL"))),
        },
        None => article_link(&cfg.ingest.article_link, &cfg.site.link, &slug),
    };
    let title = meta.get("title").map(clean).filter(|t| visible(t)).unwrap_or_else(|| clean(&draft.derived_title));
    if !visible(&title) {
        return Err(Reject::new("no-title", "the article has no title and no text to take one from"));
    }
    let title = text::shorten(&title, TITLE_LIMIT);
    let summary = meta.get("summary").map(clean).unwrap_or(draft.derived_summary);
    let mut authors: Vec<String> = labels(meta.list("author"));
    if authors.is_empty() {
        authors = labels(draft.credits);
    }
    if authors.is_empty() {
        authors.push(cfg.site.author.clone());
    }
    let mut extra: BTreeMap<String, String> = meta.extra().into_iter().map(|(k, v)| (k, clean(&v))).collect();
    if let Some(d) = extra_date {
        extra.insert("Date-Given".into(), d);
    }
    let content_html = match &draft.markdown {
        Some(body) => {
            let base =
                Url::parse(&link).map_err(|e| Reject::new("bad-link", format!("the article link {link:?}: {e}")))?;
            markdown::render(body, &base)?
        }
        None => draft.content_html,
    };
    if !visible(&html_text(&content_html)) {
        return Err(Reject::new("no-body", "the article's body shows no text (only markup that is not published)"));
    }
    if content_html.len() > markdown::HTML_LIMIT {
        return Err(Reject::new(
            "too-large",
            format!("the article is {} bytes of HTML (at most {}); split it", content_html.len(), markdown::HTML_LIMIT),
        ));
    }
    let capped = |mut v: Vec<String>| {
        v.truncate(LIST_LIMIT);
        v
    };
    if let Some(d) = &draft.dateline {
        extra.entry("Dateline".into()).or_insert_with(|| match &d.outlet {
            Some(o) => format!("{} ({o})", d.place),
            None => d.place.clone(),
        });
    }
    let source = DROP_SOURCE.to_string();
    let mut article = Article {
        key: article_key(&source, &slug),
        id: mint_id(&cfg.site.id_authority, published, &source, &slug),
        source,
        slug,
        title,
        link,
        summary,
        content_html: strip_forbidden(&content_html).into_owned(),
        authors,
        categories: capped(labels(meta.list("category"))),
        tags: capped(labels(meta.list("tags"))),
        language,
        published,
        updated: published.with_timezone(&Utc),
        dateline: draft.dateline,
        extra,
        origin: name.to_string(),
        digest: String::new(),
        version: 1,
        origin_id: None,
        via: None,
        provenance: Vec::new(),
        enclosures: Vec::new(),
    };
    article.digest = article.compute_digest();
    Ok((article, explicit_date))
}

/// RFC 3339, RFC 2822, or `YYYY-MM-DD[ HH:MM[:SS]]` in the site's time zone.
pub fn parse_date(s: &str, tz: chrono_tz::Tz) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d);
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Some(d);
    }
    let naive = ["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))?;
    // In a DST gap the local time does not exist: take the later reading, as cron does.
    tz.from_local_datetime(&naive).latest().map(|d| d.fixed_offset())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg() -> Config {
        let text = "[site]\ntitle = \"Suara\"\nlink = \"https://news.example.org/\"\nlanguage = \"id\"\nauthor = \"Redaksi\"\n\
                    timezone = \"Asia/Jakarta\"\n[ingest]\narticle_link = \"{site}berita/{slug}\"\n[[feed]]\nname = \"all\"\n";
        Config::parse(text, Path::new("t.toml"), Path::new("/tmp")).expect("config")
    }

    fn mtime() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 1, 2, 3).unwrap()
    }

    #[test]
    fn sample_shape_without_header() {
        let text = "SURABAYA (Suarapubliknews) – Banjir merendam tiga kecamatan di Surabaya sejak Selasa pagi. Warga mengungsi.\n\
                    Paragraf kedua berisi keterangan.\n\
                    Hal itu disampaikan wali kota. (q cox, tama dinie)";
        let a = build(&cfg(), "Banjir Surabaya.txt", text.as_bytes(), mtime(), mtime()).expect("article").article;
        assert_eq!(a.title, "Banjir merendam tiga kecamatan di Surabaya sejak Selasa pagi");
        assert_eq!(a.slug, "banjir-surabaya");
        assert_eq!(a.key, "drop/banjir-surabaya");
        assert_eq!(a.id, "tag:news.example.org,2026-11-27:banjir-surabaya");
        assert_eq!(a.link, "https://news.example.org/berita/banjir-surabaya");
        assert_eq!(a.authors, ["q cox", "tama dinie"]);
        assert_eq!(a.summary, "Banjir merendam tiga kecamatan di Surabaya sejak Selasa pagi. Warga mengungsi.");
        assert_eq!(a.dateline.as_ref().map(|d| d.place.as_str()), Some("SURABAYA"));
        assert_eq!(a.language, "id");
        assert_eq!(a.published.to_rfc3339(), "2026-11-27T08:02:03+07:00");
        assert!(a.content_html.starts_with("<p>SURABAYA (Suarapubliknews) – Banjir"), "{}", a.content_html);
        assert!(a.content_html.ends_with("<p>Hal itu disampaikan wali kota.</p>"), "{}", a.content_html);
    }

    #[test]
    fn header_block_wins() {
        let text = "Title: Harga Beras Turun\nAuthor: Ani, Budi\nDate: 2026-11-20 09:30\nCategory: Ekonomi\nTags: beras, pasar\n\
                    Slug: Harga Beras\nLang: en\nDesk: kota\n\nJAKARTA - Harga beras turun. Pedagang senang. (xx)\n";
        let inc = build(&cfg(), "ignored-name.txt", text.as_bytes(), mtime(), mtime()).expect("article");
        let a = inc.article;
        assert!(inc.explicit_date);
        assert_eq!(a.title, "Harga Beras Turun");
        assert_eq!(a.authors, ["Ani", "Budi"]);
        assert_eq!(a.slug, "harga-beras");
        assert_eq!(a.published.to_rfc3339(), "2026-11-20T09:30:00+07:00");
        assert_eq!(a.categories, ["Ekonomi"]);
        assert_eq!(a.tags, ["beras", "pasar"]);
        assert_eq!(a.language, "en");
        assert_eq!(a.extra.get("Desk").map(String::as_str), Some("kota"));
    }

    #[test]
    fn crlf_bom_and_control_characters() {
        let text = "\u{feff}Title: Judul\r\n\r\nBaris\u{1} satu.\r\nBaris dua.\r\n";
        let a = build(&cfg(), "x.txt", text.as_bytes(), mtime(), mtime()).expect("article").article;
        assert_eq!(a.title, "Judul");
        assert_eq!(a.content_html, "<p>Baris satu.</p>\n<p>Baris dua.</p>");
    }

    #[test]
    fn bad_header_values_are_refused_with_the_key() {
        let r = build(&cfg(), "x.txt", b"Date: kemarin\n\nIsi.\n", mtime(), mtime()).unwrap_err();
        assert!(r.reason.starts_with("Date: \"kemarin\""), "{}", r.reason);
        let r = build(&cfg(), "x.txt", b"Title: T\nLink: /relative\n\nIsi.\n", mtime(), mtime()).unwrap_err();
        assert!(r.reason.starts_with("Link:"), "{}", r.reason);
    }

    #[test]
    fn implausible_dates_are_refused_or_clamped() {
        let now = mtime();
        for d in
            ["+12026-01-01", "-0001-01-01", "0000-01-01T00:30:00+01:00", "1970-01-01T00:00:00Z", "1989-12-31T23:00:00Z"]
        {
            let text = format!("Title: x\nDate: {d}\n\nIsi.\n");
            let r = build(&cfg(), "x.txt", text.as_bytes(), now, now);
            assert!(r.is_err(), "{d} accepted");
        }
        // A date in the future is not a schedule: the article is dated when it arrives.
        let a = build(&cfg(), "x.txt", b"Title: x\nDate: 2026-11-29\n\nIsi.\n", now, now).expect("article").article;
        assert_eq!(a.published.with_timezone(&Utc), now);
        assert_eq!(a.extra.get("Date-Given").map(String::as_str), Some("2026-11-29"));
        assert!(build(&cfg(), "x.txt", b"Title: x\nDate: 2999-12-31\n\nIsi.\n", now, now).is_err());
        // A file time from a reset clock is not a date either.
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        let a = build(&cfg(), "x.txt", b"Isi berita.\n", epoch, now).expect("article").article;
        assert_eq!(a.published.with_timezone(&Utc), now);
    }

    #[test]
    fn names_languages_and_control_characters() {
        let now = mtime();
        let text =
            "Title: A\u{b}B\u{1b}C\nAuthor: Ani <ani@example.org>, </b>Budi\nLang: in\n\nSatu\u{c}dua\u{7}tiga.\n";
        let a = build(&cfg(), "x.txt", text.as_bytes(), now, now).expect("article").article;
        assert_eq!(a.title, "A B C");
        assert_eq!(a.authors, ["Ani", "Budi"]);
        assert_eq!(a.language, "id");
        assert_eq!(a.content_html, "<p>Satu</p>\n<p>dua tiga.</p>");
        let r = build(&cfg(), "x.txt", b"Title: x\nLang: xx\n\nIsi.\n", now, now).unwrap_err();
        assert!(r.reason.starts_with("Lang:"), "{}", r.reason);
        let a =
            build(&cfg(), "x.txt", b"Title: x\nLink: https://x.org/a|b\n\nIsi.\n", now, now).expect("article").article;
        assert_eq!(a.link, "https://x.org/a%7Cb");
    }

    #[test]
    fn fields_of_control_characters_fall_back_or_vanish() {
        let now = mtime();
        let md = "---\ntitle: A\nauthor: \"\\x01\"\ntags: [\"\\x01\", ok, \"<b>x</b>\"]\n---\nIsi.\n";
        let a = build(&cfg(), "x.md", md.as_bytes(), now, now).expect("article").article;
        assert_eq!(a.authors, ["Redaksi"]);
        assert_eq!(a.tags, ["ok", "x"]);
        let r = build(&cfg(), "x.md", b"<script>alert(1)</script>\n", now, now).unwrap_err();
        assert_eq!(r.code, "no-title");
        let r = build(&cfg(), "x.md", b"---\ntitle: Komentar\n---\n<!-- x -->\n", now, now).unwrap_err();
        assert_eq!(r.code, "no-body");
        let a = build(&cfg(), "x.md", "---\ntitle: \"\u{200b}\"\n---\nIsi teks. Lagi.\n".as_bytes(), now, now)
            .expect("article");
        assert_eq!(a.article.title, "Isi teks", "an invisible title falls back to the lead");
        let a = build(&cfg(), "x.md", b"# <b></b>\n\nIsi teks.\n", now, now).expect("an empty heading is no title");
        assert_eq!(a.article.title, "Isi teks");
        assert_eq!(
            labels(vec!["<3 Jakarta".into(), "a < b".into(), "<b>x</b>".into(), "a]]>b".into()]),
            ["<3 Jakarta", "a < b", "x", "a]]>b"]
        );
    }

    #[test]
    fn dates() {
        let tz = chrono_tz::Asia::Jakarta;
        assert_eq!(
            parse_date("2026-11-27T08:00:00Z", tz).map(|d| d.to_rfc3339()),
            Some("2026-11-27T08:00:00+00:00".into())
        );
        assert_eq!(
            parse_date("Fri, 27 Nov 2026 08:00:00 +0700", tz).map(|d| d.to_rfc3339()),
            Some("2026-11-27T08:00:00+07:00".into())
        );
        assert_eq!(parse_date("2026-11-27", tz).map(|d| d.to_rfc3339()), Some("2026-11-27T00:00:00+07:00".into()));
        assert!(parse_date("27/11/2026", tz).is_none());
    }
}
