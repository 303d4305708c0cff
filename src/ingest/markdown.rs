//! Markdown articles from the web desk: YAML (`---`) or TOML (`+++`) front matter, then a body
//! rendered with pulldown-cmark and sanitized with ammonia. Pure: text in, Draft out.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use url::Url;
use yaml_rust2::{Yaml, YamlLoader};

use super::text::{SUMMARY_MAX, derive_title, shorten};
use super::{Draft, Meta, Reject};
use crate::html::{html_nesting, sanitize};

pub fn parse(text: &str) -> Result<Draft, Reject> {
    let (meta, body) = split_front_matter(text)?;
    let mut body = body.trim_start();
    check_complexity(body)?;
    let mut heading_title = None;
    // A leading `# Title` is the title when the front matter has none (its text, not its markup).
    if meta.get("title").is_none()
        && let Some(rest) = body.strip_prefix("# ")
    {
        let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
        heading_title = Some(inline_text(line.trim().trim_end_matches('#').trim())).filter(|t| !t.is_empty());
        body = after;
    }
    let lead = first_paragraph_text(body);
    if body.trim().is_empty() && lead.is_empty() {
        return Err(Reject::new("no-body", "the Markdown article has no body after its front matter"));
    }
    Ok(Draft {
        meta,
        derived_title: heading_title.unwrap_or_else(|| derive_title(&lead)),
        derived_summary: shorten(&lead, SUMMARY_MAX),
        markdown: Some(body.to_string()),
        ..Draft::default()
    })
}

/// Deepest nesting of block containers (`>`, list markers) a line may open.
const MAX_LINE_NESTING: usize = 16;
/// Rendered HTML larger than this is refused (a table can multiply a small file a thousandfold).
pub const HTML_LIMIT: usize = 2 << 20;
/// Deepest element nesting in the HTML that is handed to the sanitizer.
const MAX_HTML_NESTING: usize = 64;

/// Markdown and HTML parsers take time quadratic in the nesting depth: a few kilobytes of
/// `> > > ...` or `<div><div>...` would hold ingest for hours. Real articles nest a few levels.
fn check_complexity(body: &str) -> Result<(), Reject> {
    for (n, line) in body.lines().enumerate() {
        let mut depth = 0;
        let mut rest = line.trim_start();
        loop {
            let marker = if rest.starts_with('>') {
                1
            } else if rest.starts_with(['-', '*', '+']) && rest[1..].starts_with([' ', '\t']) {
                2
            } else {
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                if (1..=9).contains(&digits)
                    && rest[digits..].starts_with(['.', ')'])
                    && rest[digits + 1..].starts_with(' ')
                {
                    digits + 2
                } else {
                    break;
                }
            };
            depth += 1;
            rest = rest[marker..].trim_start();
        }
        if depth > MAX_LINE_NESTING {
            return Err(Reject::new(
                "too-complex",
                format!("line {} nests {depth} quotes or lists (at most {MAX_LINE_NESTING}); flatten it", n + 1),
            ));
        }
    }
    Ok(())
}

/// The text of an inline Markdown fragment (a heading line): no markup, no raw HTML.
fn inline_text(md: &str) -> String {
    let mut text = String::new();
    for event in Parser::new_ext(md, options()) {
        match event {
            Event::Text(t) | Event::Code(t) => text.push_str(&t),
            Event::SoftBreak | Event::HardBreak => text.push(' '),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn split_front_matter(text: &str) -> Result<(Meta, &str), Reject> {
    let fence = match text.lines().next().map(str::trim_end) {
        Some("---") => "---",
        Some("+++") => "+++",
        _ => return Ok((Meta::default(), text)),
    };
    let start = text.find('\n').map_or(text.len(), |i| i + 1);
    let mut end = None;
    let mut pos = start;
    for line in text[start..].split_inclusive('\n') {
        let l = line.trim_end();
        if l == fence || (fence == "---" && l == "...") {
            end = Some((pos, pos + line.len()));
            break;
        }
        pos += line.len();
    }
    let Some((fm_end, body_start)) = end else {
        return Err(Reject::new(
            "front-matter",
            format!("the front matter opened by {fence} on line 1 is never closed"),
        ));
    };
    let fm = &text[start..fm_end];
    let mut meta = Meta::default();
    if fm.len() > FRONT_MATTER_MAX {
        return Err(Reject::new(
            "front-matter",
            format!("the front matter is {} bytes (at most {FRONT_MATTER_MAX})", fm.len()),
        ));
    }
    if fence == "---" {
        refuse_yaml_aliases(fm)?;
        let docs = YamlLoader::load_from_str(fm)
            .map_err(|e| Reject::new("front-matter", format!("the YAML front matter is not valid: {e}")))?;
        match docs.into_iter().next() {
            None | Some(Yaml::Null) => {}
            Some(Yaml::Hash(h)) => {
                for (k, v) in h {
                    let Some(key) = yaml_scalar(&k) else { continue };
                    meta.push_list(&key, yaml_values(&v));
                }
            }
            Some(_) => {
                return Err(Reject::new("front-matter", "the YAML front matter must be a mapping of keys to values"));
            }
        }
    } else {
        let table: toml::Table = toml::from_str(fm).map_err(|e| {
            Reject::new("front-matter", format!("the TOML front matter is not valid: {}", e.to_string().trim_end()))
        })?;
        for (k, v) in table {
            let values = match v {
                toml::Value::Array(a) => a.iter().filter_map(toml_scalar).collect(),
                other => toml_scalar(&other).into_iter().collect(),
            };
            meta.push_list(&k, values);
        }
    }
    Ok((meta, &text[body_start..]))
}

/// Front matter is a few keys; anything larger is a mistake.
const FRONT_MATTER_MAX: usize = 64 << 10;

/// YAML aliases expand when loaded: 400 bytes of nested `*a` references became 2.3 GB. Front
/// matter never needs them, so a document that uses one is refused before it is loaded.
fn refuse_yaml_aliases(fm: &str) -> Result<(), Reject> {
    struct Aliases(usize);
    impl yaml_rust2::parser::EventReceiver for Aliases {
        fn on_event(&mut self, ev: yaml_rust2::parser::Event) {
            if matches!(ev, yaml_rust2::parser::Event::Alias(_)) {
                self.0 += 1;
            }
        }
    }
    let mut aliases = Aliases(0);
    yaml_rust2::parser::Parser::new_from_str(fm)
        .load(&mut aliases, true)
        .map_err(|e| Reject::new("front-matter", format!("the YAML front matter is not valid: {e}")))?;
    if aliases.0 > 0 {
        return Err(Reject::new("front-matter", "the YAML front matter uses aliases (*name); write the values out"));
    }
    Ok(())
}

fn yaml_scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn yaml_values(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(a) => a.iter().filter_map(yaml_scalar).collect(),
        other => yaml_scalar(other).into_iter().collect(),
    }
}

fn toml_scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        _ => None,
    }
}

fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_SMART_PUNCTUATION
}

/// Markdown -> HTML -> sanitized HTML with absolute URLs (feed readers have no base to resolve
/// against): relative links resolve against `base`, the article's own link.
pub fn render(body: &str, base: &Url) -> Result<String, Reject> {
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, Parser::new_ext(body, options()));
    if html.len() > HTML_LIMIT {
        return Err(Reject::new(
            "too-large",
            format!("the article renders to {} bytes of HTML (at most {HTML_LIMIT}); split it", html.len()),
        ));
    }
    let depth = html_nesting(&html);
    if depth > MAX_HTML_NESTING {
        return Err(Reject::new(
            "too-complex",
            format!("the article's HTML nests {depth} elements deep (at most {MAX_HTML_NESTING}); simplify it"),
        ));
    }
    Ok(sanitize(&html, base))
}

/// The plain text of the first paragraph (or heading, when there is no paragraph).
fn first_paragraph_text(body: &str) -> String {
    let mut text = String::new();
    let mut inside = false;
    for event in Parser::new_ext(body, options()) {
        match event {
            Event::Start(Tag::Paragraph) => inside = true,
            Event::Start(Tag::Heading { level, .. }) if level <= HeadingLevel::H2 && text.is_empty() => inside = true,
            Event::End(TagEnd::Paragraph) if inside => break,
            Event::End(TagEnd::Heading(_)) if inside => inside = false,
            Event::Text(t) | Event::Code(t) if inside => text.push_str(&t),
            Event::SoftBreak | Event::HardBreak if inside => text.push(' '),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://news.example.org/berita/x").expect("url")
    }

    fn html(d: &Draft) -> String {
        render(d.markdown.as_deref().expect("markdown"), &base()).expect("render")
    }

    #[test]
    fn yaml_front_matter() {
        let d = parse(
            "---\ntitle: Banjir di Kota\ntags: [banjir, cuaca]\nauthor:\n  - Ani\n  - Budi\n---\nAir **naik**.\n",
        )
        .expect("draft");
        assert_eq!(d.meta.get("title"), Some("Banjir di Kota"));
        assert_eq!(d.meta.list("tags"), ["banjir", "cuaca"]);
        assert_eq!(d.meta.list("author"), ["Ani", "Budi"]);
        assert_eq!(html(&d), "<p>Air <strong>naik</strong>.</p>");
        assert_eq!(d.derived_summary, "Air naik.");
    }

    #[test]
    fn toml_front_matter() {
        let d = parse("+++\ntitle = \"Pasar\"\ndate = 2026-11-27T08:00:00+07:00\ncategories = [\"ekonomi\"]\n+++\nHarga stabil.\n")
            .expect("draft");
        assert_eq!(d.meta.get("date"), Some("2026-11-27T08:00:00+07:00"));
        assert_eq!(d.meta.list("categories"), ["ekonomi"]);
    }

    #[test]
    fn heading_is_the_title_without_front_matter() {
        let d = parse("# Judul Besar\n\nParagraf pertama. Kedua.\n").expect("draft");
        assert_eq!(d.derived_title, "Judul Besar");
        assert!(!html(&d).contains("Judul Besar"));
    }

    #[test]
    fn html_is_sanitized_and_urls_absolute() {
        let d = parse(
            "Teks <script>alert(1)</script> [a](/kota/x) <img src=\"x.png\" onerror=\"alert(1)\"> [j](javascript:alert(1)) \
             <q cite=\"javascript:alert(1)\">q</q> <bdo dir=\"rtl\">b</bdo> [^1]\n\n[^1]: Catatan.\n",
        )
        .expect("draft");
        let h = html(&d);
        for bad in ["<script", "onerror", "javascript:", "cite=", "<bdo"] {
            assert!(!h.contains(bad), "{bad} in {h}");
        }
        assert!(h.contains("href=\"https://news.example.org/kota/x\""), "{h}");
        assert!(h.contains("src=\"https://news.example.org/berita/x.png\""), "relative to the article: {h}");
        assert!(h.contains("href=\"https://news.example.org/berita/x#"), "footnotes point into the article: {h}");
    }

    #[test]
    fn wrappers_that_would_leave_blocks_inside_paragraphs_go_with_their_content() {
        let d = parse("a <button><div>b</div></button> c <object><div>d</div></object>\n").expect("draft");
        assert_eq!(html(&d), "<p>a  c </p>");
    }

    #[test]
    fn heading_titles_are_text() {
        let d = parse("# Judul **tebal** <i>miring</i> `kode`\n\nIsi.\n").expect("draft");
        assert_eq!(d.derived_title, "Judul tebal miring kode");
    }

    #[test]
    fn many_references_in_one_paragraph_stay_fast_and_exact() {
        let started = std::time::Instant::now();
        let body = "a&b 1<2 3>4 \"d\" ".repeat(8192);
        let h = html(&parse(&body).expect("draft"));
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
        assert!(h.starts_with("<p>a&amp;b 1&lt;2 3&gt;4 “d” a&amp;b"), "{}", &h[..80]);
        let linked = html(&parse("[x](https://x.org/?a=1&b=2) &amp; \u{e000}\n").expect("draft"));
        assert_eq!(
            linked,
            "<p><a href=\"https://x.org/?a=1&amp;b=2\" rel=\"noopener noreferrer\">x</a> &amp; \u{e000}</p>"
        );
    }

    #[test]
    fn pathological_nesting_is_refused_quickly() {
        let started = std::time::Instant::now();
        for body in ["- ".repeat(8000) + "x", "> ".repeat(16384) + "x", "> - ".repeat(8000) + "x"] {
            assert_eq!(parse(&body).unwrap_err().code, "too-complex");
        }
        let divs = parse(&("<div>".repeat(20000) + "x")).expect("draft");
        assert_eq!(render(divs.markdown.as_deref().unwrap(), &base()).unwrap_err().code, "too-complex");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
        let normal = "> kutipan\n> - daftar\n>   - dalam\n\n1. satu\n   - dua\n";
        assert!(render(parse(normal).unwrap().markdown.as_deref().unwrap(), &base()).is_ok());
    }

    #[test]
    fn yaml_alias_bombs_are_refused_unexpanded() {
        let mut fm = String::from("---\na: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for (i, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"].iter().zip(["a", "b", "c", "d", "e", "f", "g", "h"]) {
            fm += &format!(
                "{i}: &{i} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
            );
        }
        fm += "title: bomb\n---\nIsi.\n";
        let started = std::time::Instant::now();
        assert!(parse(&fm).unwrap_err().reason.contains("aliases"));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn broken_front_matter_is_refused() {
        assert_eq!(parse("---\ntitle: x\nbody without end\n").unwrap_err().code, "front-matter");
        assert_eq!(parse("---\ntitle: [unclosed\n---\nx\n").unwrap_err().code, "front-matter");
    }
}
