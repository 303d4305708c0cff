//! Markdown articles from the web desk: YAML (`---`) or TOML (`+++`) front matter, then a body
//! rendered with pulldown-cmark and sanitized with ammonia. Pure: text in, Draft out.

use std::collections::HashSet;

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use url::Url;
use yaml_rust2::{Yaml, YamlLoader};

use super::text::{SUMMARY_MAX, derive_title, shorten};
use super::{Draft, Meta, Reject};

pub fn parse(text: &str, base: &Url) -> Result<Draft, Reject> {
    let (meta, body) = split_front_matter(text)?;
    let mut body = body.trim_start();
    let mut heading_title = None;
    // A leading `# Title` is the title when the front matter has none.
    if meta.get("title").is_none()
        && let Some(rest) = body.strip_prefix("# ")
    {
        let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
        heading_title = Some(line.trim().trim_end_matches('#').trim().to_string());
        body = after;
    }
    let html = render(body, base);
    let lead = first_paragraph_text(body);
    if html.trim().is_empty() && lead.is_empty() {
        return Err(Reject::new("no-body", "the Markdown article has no body after its front matter"));
    }
    Ok(Draft {
        meta,
        derived_title: heading_title.unwrap_or_else(|| derive_title(&lead)),
        derived_summary: shorten(&lead, SUMMARY_MAX),
        content_html: html,
        ..Draft::default()
    })
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
    if fence == "---" {
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

/// Markdown -> HTML -> sanitized HTML with absolute URLs (feed readers have no base to resolve against).
pub fn render(body: &str, base: &Url) -> String {
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, Parser::new_ext(body, options()));
    sanitize(&html, base)
}

pub fn sanitize(html: &str, base: &Url) -> String {
    ammonia::Builder::default()
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .url_relative(ammonia::UrlRelative::RewriteWithBase(base.clone()))
        .link_rel(Some("noopener noreferrer"))
        .clean(html)
        .to_string()
        .trim()
        .to_string()
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
        Url::parse("https://news.example.org/").expect("url")
    }

    #[test]
    fn yaml_front_matter() {
        let d = parse(
            "---\ntitle: Banjir di Kota\ntags: [banjir, cuaca]\nauthor:\n  - Ani\n  - Budi\n---\nAir **naik**.\n",
            &base(),
        )
        .expect("draft");
        assert_eq!(d.meta.get("title"), Some("Banjir di Kota"));
        assert_eq!(d.meta.list("tags"), ["banjir", "cuaca"]);
        assert_eq!(d.meta.list("author"), ["Ani", "Budi"]);
        assert_eq!(d.content_html, "<p>Air <strong>naik</strong>.</p>");
        assert_eq!(d.derived_summary, "Air naik.");
    }

    #[test]
    fn toml_front_matter() {
        let d = parse("+++\ntitle = \"Pasar\"\ndate = 2026-11-27T08:00:00+07:00\ncategories = [\"ekonomi\"]\n+++\nHarga stabil.\n", &base())
            .expect("draft");
        assert_eq!(d.meta.get("date"), Some("2026-11-27T08:00:00+07:00"));
        assert_eq!(d.meta.list("categories"), ["ekonomi"]);
    }

    #[test]
    fn heading_is_the_title_without_front_matter() {
        let d = parse("# Judul Besar\n\nParagraf pertama. Kedua.\n", &base()).expect("draft");
        assert_eq!(d.derived_title, "Judul Besar");
        assert!(!d.content_html.contains("Judul Besar"));
    }

    #[test]
    fn html_is_sanitized_and_urls_absolute() {
        let d = parse(
            "Teks <script>alert(1)</script> [a](/berita/x) <img src=\"x.png\" onerror=\"alert(1)\"> [j](javascript:alert(1))\n",
            &base(),
        )
        .expect("draft");
        assert!(!d.content_html.contains("<script"), "{}", d.content_html);
        assert!(!d.content_html.contains("onerror"), "{}", d.content_html);
        assert!(!d.content_html.contains("javascript:"), "{}", d.content_html);
        assert!(d.content_html.contains("href=\"https://news.example.org/berita/x\""), "{}", d.content_html);
        assert!(d.content_html.contains("src=\"https://news.example.org/x.png\""), "{}", d.content_html);
    }

    #[test]
    fn broken_front_matter_is_refused() {
        assert_eq!(parse("---\ntitle: x\nbody without end\n", &base()).unwrap_err().code, "front-matter");
        assert_eq!(parse("---\ntitle: [unclosed\n---\nx\n", &base()).unwrap_err().code, "front-matter");
    }
}
