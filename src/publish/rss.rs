//! Article list -> RSS 2.0 bytes (the `rss` crate): `atom:link rel=self`, `guid isPermaLink=false`
//! for tag ids, `description` = summary, `content:encoded` = full HTML, `dc:creator` per author.

use std::collections::BTreeMap;

use rss::extension::dublincore::DublinCoreExtension;
use rss::extension::{Extension, ExtensionMap};
use rss::{Category, Channel, Guid, Item};

use super::FeedDoc;
use crate::article::{escape_html, strip_forbidden};

pub fn render(doc: &FeedDoc) -> Result<Vec<u8>, String> {
    let items = doc.articles.iter().map(|a| {
        let s = |v: &str| strip_forbidden(v).into_owned();
        Item {
            title: Some(s(&a.title)),
            link: Some(s(&a.link)),
            // RSS descriptions are HTML: the plain-text summary is escaped once more.
            description: Some(s(&escape_html(&a.summary))),
            content: Some(s(&a.content_html)),
            categories: doc.categories(a).map(|c| Category { name: s(c), domain: None }).collect(),
            guid: Some(Guid { value: s(&a.id), permalink: false }),
            source: a.via.as_ref().map(|v| rss::Source { url: s(&v.url), title: Some(s(&v.title)) }),
            // RSS allows one enclosure per item: the first (Atom and JSON Feed carry them all).
            enclosure: a.enclosures.first().map(|e| rss::Enclosure {
                url: s(&e.url),
                length: e.length.to_string(),
                mime_type: s(&e.mime),
            }),
            pub_date: Some(rfc822(&a.published)),
            dublin_core_ext: Some(DublinCoreExtension {
                creators: a.authors.iter().map(|n| s(n)).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    });
    let self_link = Extension {
        name: "atom:link".into(),
        attrs: BTreeMap::from([
            ("href".to_string(), doc.urls.rss.clone()),
            ("rel".to_string(), "self".to_string()),
            ("type".to_string(), "application/rss+xml".to_string()),
        ]),
        ..Default::default()
    };
    let hub_links = doc.hubs.iter().map(|hub| Extension {
        name: "atom:link".into(),
        attrs: BTreeMap::from([("href".to_string(), hub.to_string()), ("rel".to_string(), "hub".to_string())]),
        ..Default::default()
    });
    let history_links = doc.history.iter().map(|(rel, urls)| Extension {
        name: "atom:link".into(),
        attrs: BTreeMap::from([
            ("href".to_string(), urls.rss.clone()),
            ("rel".to_string(), rel.to_string()),
            ("type".to_string(), "application/rss+xml".to_string()),
        ]),
        ..Default::default()
    });
    let mut extensions = ExtensionMap::default();
    extensions
        .entry("atom".into())
        .or_default()
        .insert("link".into(), std::iter::once(self_link).chain(hub_links).chain(history_links).collect());
    let mut namespaces = BTreeMap::from([("atom".to_string(), "http://www.w3.org/2005/Atom".to_string())]);
    if doc.archive_page {
        let marker = Extension { name: "fh:archive".into(), ..Default::default() };
        extensions.entry("fh".into()).or_default().insert("archive".into(), vec![marker]);
        namespaces.insert("fh".into(), super::HISTORY_NS.into());
    }
    let channel = Channel {
        title: strip_forbidden(&doc.feed.title).into_owned(),
        link: doc.site.link.to_string(),
        description: strip_forbidden(&doc.feed.description).into_owned(),
        language: Some(doc.site.language.clone()),
        last_build_date: Some(doc.updated.to_rfc2822()),
        generator: Some(super::GENERATOR.into()),
        docs: Some("https://www.rssboard.org/rss-specification".into()),
        items: items.collect(),
        extensions,
        namespaces,
        ..Default::default()
    };
    let out = channel.pretty_write_to(Vec::new(), b' ', 2).map_err(|e| format!("RSS writer: {e}"))?;
    let mut out = String::from_utf8(out).map_err(|e| format!("RSS writer: {e}"))?;
    out = plain_text_refs(&out, &["title", "dc:creator", "category"]);
    out.push('\n');
    Ok(out.into_bytes())
}

/// An RFC 822 date in the article's own zone, or in UTC when the zone is not a whole or half
/// hour from it (+05:45 is real, but readers of RSS dates mishandle such offsets).
fn rfc822(d: &chrono::DateTime<chrono::FixedOffset>) -> String {
    if d.offset().local_minus_utc() % 1800 == 0 { d.to_rfc2822() } else { d.with_timezone(&chrono::Utc).to_rfc2822() }
}

/// RSS text elements are read as HTML by some readers and as plain text by others. The RSS
/// Advisory Board's profile says how to mark plain text unambiguously: write `&` and `<` as the
/// hexadecimal references `&#x26;` and `&#x3C;`. The writer escaped them as `&amp;` and `&lt;`.
fn plain_text_refs(xml: &str, elements: &[&str]) -> String {
    let tags: Vec<(String, String)> = elements.iter().map(|n| (format!("<{n}>"), format!("</{n}>"))).collect();
    let mut out = String::with_capacity(xml.len() + 64);
    let mut pos = 0;
    while let Some(lt) = xml[pos..].find('<').map(|i| pos + i) {
        let here = &xml[lt..];
        let Some((open, close)) = tags.iter().find(|(o, _)| here.starts_with(o.as_str())) else {
            out.push_str(&xml[pos..=lt]);
            pos = lt + 1;
            continue;
        };
        let text_start = lt + open.len();
        let Some(len) = xml[text_start..].find(close.as_str()) else { break };
        out.push_str(&xml[pos..text_start]);
        let text = &xml[text_start..text_start + len];
        if text.contains('&') {
            out.push_str(&text.replace("&amp;", "&#x26;").replace("&lt;", "&#x3C;"));
        } else {
            out.push_str(text);
        }
        pos = text_start + len;
    }
    out.push_str(&xml[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_gets_hex_references() {
        let xml = "<item><title>A &amp; B &lt;c&gt;</title><description>x &amp; y</description><category>R&amp;D</category></item>";
        assert_eq!(
            plain_text_refs(xml, &["title", "category"]),
            "<item><title>A &#x26; B &#x3C;c&gt;</title><description>x &amp; y</description><category>R&#x26;D</category></item>"
        );
    }
}
