//! HTML that siar republishes: one sanitizer for articles from the drop folder and items from
//! external feeds (a fixed element list readers and the W3C validator accept; no scripts, styles,
//! frames, event attributes, or URLs outside http/https/mailto; relative URLs made absolute; links
//! get rel="noopener noreferrer"), and the plain text of an HTML fragment for text-only fields.

use std::collections::HashSet;

use url::Url;

/// Elements kept in article HTML: what ammonia considers safe and feed readers (and the W3C
/// validator) accept as HTML; `bdo` (text-direction spoofing) and `rtc` are not among them.
const TAGS: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "b",
    "bdi",
    "blockquote",
    "br",
    "caption",
    "cite",
    "code",
    "col",
    "colgroup",
    "data",
    "dd",
    "del",
    "details",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hgroup",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "rp",
    "rt",
    "ruby",
    "s",
    "samp",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "tt",
    "u",
    "ul",
    "var",
    "wbr",
];

/// Elements removed with everything inside them: keeping the children of a form control or an
/// embedded object leaves blocks where only inline content may stand.
const DROP_WITH_CONTENT: &[&str] = &[
    "script", "style", "object", "embed", "applet", "button", "select", "textarea", "marquee", "noscript", "template",
    "iframe", "frameset", "noembed", "svg", "math",
];

pub fn sanitize(html: &str, base: &Url) -> String {
    thread_local! {
        // Building the sanitizer (hash sets of tags and attributes) costs as much as cleaning a
        // short item: one per thread, only its base URL changes per call.
        static BUILDER: std::cell::RefCell<ammonia::Builder<'static>> = std::cell::RefCell::new(builder());
    }
    let (shielded, shield) = shield_references(html);
    let clean = BUILDER.with(|b| {
        let mut b = b.borrow_mut();
        b.url_relative(ammonia::UrlRelative::RewriteWithBase(base.clone()));
        b.clean(&shielded).to_string()
    });
    let clean = if shield { unshield_references(&clean) } else { clean };
    without_tracking_pixels(&clean).trim().to_string()
}

fn builder() -> ammonia::Builder<'static> {
    let mut b = ammonia::Builder::default();
    b.tags(TAGS.iter().copied().collect())
        .clean_content_tags(DROP_WITH_CONTENT.iter().copied().collect())
        .rm_tag_attributes("q", &["cite"])
        .rm_tag_attributes("blockquote", &["cite"])
        .rm_tag_attributes("del", &["cite"])
        .rm_tag_attributes("ins", &["cite"])
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .link_rel(Some("noopener noreferrer"));
    b
}

/// Drops 1×1 (or 0×0) images: tracking pixels tell the origin who read the item, and show nothing.
/// Runs on the sanitizer's output, whose attributes are always double-quoted.
fn without_tracking_pixels(html: &str) -> std::borrow::Cow<'_, str> {
    if !html.contains("<img") {
        return html.into();
    }
    let tiny =
        |tag: &str, attr: &str| ["0", "1", "1px", "0px"].iter().any(|v| tag.contains(&format!(" {attr}=\"{v}\"")));
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find("<img").filter(|&i| matches!(rest.as_bytes().get(i + 4), Some(b' ' | b'>'))) {
        let Some(len) = rest[i..].find('>') else { break };
        let tag = &rest[i..=i + len];
        out.push_str(&rest[..i]);
        // An image without a source (its `data:` or `javascript:` URL removed) shows nothing either.
        if !(tiny(tag, "width") && tiny(tag, "height")) && tag.contains(" src=\"") {
            out.push_str(tag);
        }
        rest = &rest[i + len + 1..];
    }
    out.push_str(rest);
    out.into()
}

/// The escapes pulldown-cmark writes in text, and private-use stand-ins for them.
const REFERENCES: [(&str, char); 5] = [
    ("&amp;", '\u{e000}'),
    ("&lt;", '\u{e001}'),
    ("&gt;", '\u{e002}'),
    ("&quot;", '\u{e003}'),
    ("&nbsp;", NBSP_STAND_IN),
];
const NBSP_STAND_IN: char = '\u{e004}';
const STAND_INS: [char; 5] = ['\u{e000}', '\u{e001}', '\u{e002}', '\u{e003}', NBSP_STAND_IN];

/// html5ever's tokenizer takes time quadratic in the character references (and no-break spaces)
/// of one text node (measured: 8,192 `&` in a paragraph took 0.8 s, 16,384 took 1.6 s; 50,000
/// `&nbsp;` 15 s, in a debug build). In text outside tags the four escapes and `&nbsp;` or U+00A0
/// are swapped for private-use characters before sanitizing and swapped back after (the no-break
/// space as the character itself). Skipped (false) when the text already holds those characters.
fn shield_references(html: &str) -> (std::borrow::Cow<'_, str>, bool) {
    if !html.contains(['&', '\u{a0}']) || html.contains(STAND_INS) {
        return (html.into(), false);
    }
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    let mut rest = html;
    while let Some(i) = rest.find(['<', '>', '&', '\u{a0}']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let c = rest.chars().next().unwrap_or_default();
        if c == '&' && !in_tag {
            if let Some((entity, stand_in)) = REFERENCES.iter().find(|(e, _)| rest.starts_with(e)) {
                out.push(*stand_in);
                rest = &rest[entity.len()..];
                continue;
            }
        } else if c == '\u{a0}' && !in_tag {
            out.push(NBSP_STAND_IN);
            rest = &rest[c.len_utf8()..];
            continue;
        } else if c == '<' {
            in_tag = true;
        } else if c == '>' {
            in_tag = false;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out.push_str(rest);
    (out.into(), true)
}

fn unshield_references(html: &str) -> String {
    if !html.contains(STAND_INS) {
        return html.to_string();
    }
    let mut out = String::with_capacity(html.len() + 64);
    for c in html.chars() {
        match REFERENCES.iter().find(|(_, s)| *s == c) {
            Some(_) if c == NBSP_STAND_IN => out.push('\u{a0}'),
            Some((entity, _)) => out.push_str(entity),
            None => out.push(c),
        }
    }
    out
}

/// The plain text of an HTML fragment: tags dropped (script and style with their content),
/// character references decoded (`&nbsp;`, `&eacute;`, `&#8217;`), white space collapsed.
pub fn to_text(html: &str) -> String {
    if !html.contains(['<', '&']) {
        return html.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    let clean = ammonia::Builder::empty()
        .clean_content_tags(DROP_WITH_CONTENT.iter().copied().collect())
        .clean(html)
        .to_string();
    let text = clean
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The nesting depth of non-void elements in HTML (approximate: enough to refuse pathologies).
pub fn html_nesting(html: &str) -> usize {
    const VOID: &[&str] =
        &["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"];
    let (mut depth, mut max) = (0usize, 0usize);
    let b = html.as_bytes();
    let mut i = 0;
    while let Some(off) = html[i..].find('<') {
        i += off + 1;
        if b.get(i) == Some(&b'/') {
            depth = depth.saturating_sub(1);
            continue;
        }
        let name_len = b[i..].iter().take_while(|c| c.is_ascii_alphanumeric()).count();
        if name_len == 0 {
            continue;
        }
        let name = html[i..i + name_len].to_ascii_lowercase();
        let self_closing = html[i..].find('>').is_some_and(|e| html[i..i + e].ends_with('/'));
        if !VOID.contains(&name.as_str()) && !self_closing {
            depth += 1;
            max = max.max(depth);
        }
    }
    max
}

/// Inline elements: their tags do not separate words.
const INLINE: &[&str] = &[
    "a", "abbr", "acronym", "b", "bdi", "cite", "code", "data", "del", "dfn", "em", "i", "ins", "kbd", "mark", "q",
    "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "time", "tt", "u", "var", "wbr",
];

/// The plain text of HTML that `sanitize` wrote: no parsing needed, as its output is regular
/// (tags closed, `<` in text escaped, only the serializer's entities). Block tags separate words.
pub fn text_of_sanitized(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    // One pass: tags dropped (block tags are a space), entities decoded, white space collapsed.
    let mut space = false;
    let mut rest = html;
    let push = |out: &mut String, text: &str, space: &mut bool| {
        for c in text.chars() {
            if c.is_whitespace() {
                *space = true;
            } else {
                if *space && !out.is_empty() {
                    out.push(' ');
                }
                *space = false;
                out.push(c);
            }
        }
    };
    while let Some(i) = rest.find(['<', '&']) {
        push(&mut out, &rest[..i], &mut space);
        rest = &rest[i..];
        if rest.starts_with('<') {
            let Some(gt) = rest.find('>') else { return out };
            let name = rest[1..gt].trim_start_matches('/').split([' ', '/']).next().unwrap_or_default();
            if !INLINE.contains(&name) {
                space = true;
            }
            rest = &rest[gt + 1..];
        } else {
            let entity = [("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&nbsp;", " ")]
                .iter()
                .find(|(e, _)| rest.starts_with(e));
            match entity {
                Some((e, text)) => {
                    push(&mut out, text, &mut space);
                    rest = &rest[e.len()..];
                }
                None => {
                    push(&mut out, "&", &mut space);
                    rest = &rest[1..];
                }
            }
        }
    }
    push(&mut out, rest, &mut space);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_html() {
        assert_eq!(
            to_text("Tom &amp; Jerry&nbsp;&eacute;t&eacute; <b>bold</b><script>x()</script>"),
            "Tom & Jerry été bold"
        );
        assert_eq!(to_text("AT&T <3 a < b"), "AT&T <3 a < b");
        assert_eq!(to_text("  plain\n text "), "plain text");
        assert_eq!(to_text("&lt;b&gt;literal&lt;/b&gt;"), "<b>literal</b>");
    }

    #[test]
    fn text_of_sanitized_html_matches_the_parser() {
        let base = Url::parse("https://origin.example/").expect("url");
        for (html, text) in [
            ("<p>Tom &amp; Jerry&nbsp;<b>x</b>y</p><p>a &lt; b</p>", "Tom & Jerry xy a < b"),
            ("plain", "plain"),
            ("<ul><li>1</li><li>2</li></ul>", "1 2"),
            ("<p>a<br>b <a href=\"https://x.example/\">c</a>d</p>", "a b cd"),
        ] {
            assert_eq!(text_of_sanitized(&sanitize(html, &base)), text, "{html}");
        }
    }

    #[test]
    fn sanitizer_removes_active_content() {
        let base = Url::parse("https://origin.example/news/").expect("url");
        let out = sanitize(
            r#"<p onclick="x()">Hi <a href="javascript:alert(1)">j</a> <a href="/rel">r</a><img src="x.png" onerror="alert(1)"><script>alert(1)</script><iframe src="https://e.vil/"></iframe><style>p{}</style></p>"#,
            &base,
        );
        assert!(!out.contains("script") && !out.contains("onerror") && !out.contains("onclick"), "{out}");
        assert!(!out.contains("javascript:") && !out.contains("iframe") && !out.contains("style"), "{out}");
        assert!(out.contains(r#"href="https://origin.example/rel""#), "{out}");
        assert!(out.contains(r#"src="https://origin.example/news/x.png""#), "{out}");
        assert!(out.contains(r#"rel="noopener noreferrer""#), "{out}");
        let pixel = sanitize(
            r#"<p>a<img src="https://t.example/p.gif" width="1" height="1">b<img src="x.png" width="1" height="300"></p>"#,
            &base,
        );
        assert_eq!(pixel, r#"<p>ab<img src="https://origin.example/news/x.png" width="1" height="300"></p>"#);
        let sourceless = sanitize(r#"<p>hello <img src="data:image/png;base64,iVBORw0KGgo="></p>"#, &base);
        assert_eq!(sourceless, "<p>hello </p>");
        let nbsp = sanitize(&format!("<p>{}</p>", "w&nbsp;\u{a0}".repeat(20_000)), &base);
        assert!(
            nbsp.starts_with("<p>w\u{a0}\u{a0}w") && nbsp.len() == 3 + 20_000 * 5 + 4,
            "no-break spaces survive the shield"
        );
    }
}
