//! Article list -> RSS 2.0 bytes (the `rss` crate): `atom:link rel=self`, `guid isPermaLink=false`
//! for tag ids, `description` = summary, `content:encoded` = full HTML, `dc:creator` per author.

use std::collections::BTreeMap;

use rss::extension::dublincore::DublinCoreExtension;
use rss::extension::{Extension, ExtensionMap};
use rss::{Category, Channel, Guid, Item};

use super::FeedDoc;
use crate::article::strip_forbidden;

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
            pub_date: Some(a.published.to_rfc2822()),
            dublin_core_ext: Some(DublinCoreExtension { creators: a.authors.iter().map(|n| s(n)).collect(), ..Default::default() }),
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
    let mut extensions = ExtensionMap::default();
    extensions.entry("atom".into()).or_default().insert("link".into(), vec![self_link]);
    let channel = Channel {
        title: strip_forbidden(&doc.feed.title).into_owned(),
        link: doc.site.link.to_string(),
        description: strip_forbidden(&doc.feed.description).into_owned(),
        language: Some(doc.site.language.clone()),
        last_build_date: doc.updated.map(|u| u.to_rfc2822()),
        generator: Some(super::GENERATOR.into()),
        docs: Some("https://www.rssboard.org/rss-specification".into()),
        items: items.collect(),
        extensions,
        namespaces: BTreeMap::from([("atom".to_string(), "http://www.w3.org/2005/Atom".to_string())]),
        ..Default::default()
    };
    let mut out = channel.pretty_write_to(Vec::new(), b' ', 2).map_err(|e| format!("RSS writer: {e}"))?;
    out.push(b'\n');
    Ok(out)
}

pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
