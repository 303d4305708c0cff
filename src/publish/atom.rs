//! Article list -> Atom 1.0 bytes (`atom_syndication`). Its defaults are unsafe (empty id, 1970
//! `updated`), so every field is set here and the validation gate checks the result.

use atom_syndication::{Category, Content, Entry, Feed, Generator, Link, Person, Source, Text, TextType, WriteConfig};
use chrono::{DateTime, Duration, Utc};

use super::FeedDoc;
use crate::article::{escape_html, strip_forbidden};

pub fn render(doc: &FeedDoc) -> Result<Vec<u8>, String> {
    let feed_lang = &doc.site.language;
    let s = |v: &str| strip_forbidden(v).into_owned();
    let mut seen_updated: std::collections::HashSet<DateTime<Utc>> = std::collections::HashSet::new();
    let entries: Vec<Entry> = doc
        .articles
        .iter()
        .map(|a| {
            let lang = (!a.language.eq_ignore_ascii_case(feed_lang)).then(|| a.language.clone());
            let text = |v: &str| text_construct(&s(v), lang.clone());
            // Atom readers (and the W3C validator) take two entries with one `updated` for a broken
            // generator: ties are told apart by microseconds, in feed order, so output stays deterministic.
            let mut updated = a.updated;
            while !seen_updated.insert(updated) {
                updated += Duration::microseconds(1);
            }
            Entry {
                title: text(&a.title),
                id: s(&a.id),
                updated: updated.fixed_offset(),
                published: Some(a.published),
                authors: a.authors.iter().map(|n| Person { name: s(n), ..Default::default() }).collect(),
                categories: doc.categories(a).map(|c| Category { term: s(c), ..Default::default() }).collect(),
                links: std::iter::once(Link {
                    href: s(&a.link),
                    rel: "alternate".into(),
                    mime_type: Some("text/html".into()),
                    ..Default::default()
                })
                .chain(a.enclosures.iter().map(|e| Link {
                    href: s(&e.url),
                    rel: "enclosure".into(),
                    mime_type: Some(s(&e.mime)),
                    length: (e.length > 0).then(|| e.length.to_string()),
                    ..Default::default()
                }))
                .collect(),
                summary: (!a.summary.is_empty()).then(|| text(&a.summary)),
                source: a.via.as_ref().map(|v| Source {
                    title: text_construct(&s(&v.title), None),
                    id: s(&v.feed_id),
                    updated: a.updated.fixed_offset(),
                    links: std::iter::once(Link { href: s(&v.url), rel: "self".into(), ..Default::default() })
                        .chain(v.site.iter().map(|site| Link {
                            href: s(site),
                            rel: "alternate".into(),
                            mime_type: Some("text/html".into()),
                            ..Default::default()
                        }))
                        .collect(),
                    ..Default::default()
                }),
                content: Some(Content {
                    value: Some(s(&a.content_html)),
                    content_type: Some("html".into()),
                    lang: lang.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    // The feed is as new as its newest entry, tie-breaking microseconds included.
    let updated =
        entries.iter().map(|e| e.updated).max().map_or(doc.updated, |e| e.with_timezone(&Utc).max(doc.updated));
    let feed = Feed {
        title: text_construct(&s(&doc.feed.title), None),
        subtitle: Some(text_construct(&s(&doc.feed.description), None)),
        id: doc.id.clone(),
        updated: updated.fixed_offset(),
        authors: vec![Person { name: s(&doc.site.author), uri: Some(doc.site.link.to_string()), ..Default::default() }],
        generator: Some(Generator {
            value: "siar".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            ..Default::default()
        }),
        links: [
            Link {
                href: doc.site.link.to_string(),
                rel: "alternate".into(),
                mime_type: Some("text/html".into()),
                ..Default::default()
            },
            Link {
                href: doc.urls.atom.clone(),
                rel: "self".into(),
                mime_type: Some("application/atom+xml".into()),
                ..Default::default()
            },
        ]
        .into_iter()
        .chain(doc.hubs.iter().map(|hub| Link { href: hub.to_string(), rel: "hub".into(), ..Default::default() }))
        .chain(doc.history.iter().map(|(rel, urls)| Link {
            href: urls.atom.clone(),
            rel: rel.to_string(),
            mime_type: Some("application/atom+xml".into()),
            ..Default::default()
        }))
        .collect(),
        extensions: if doc.archive_page {
            let marker = atom_syndication::extension::Extension { name: "fh:archive".into(), ..Default::default() };
            std::collections::BTreeMap::from([(
                "fh".to_string(),
                std::collections::BTreeMap::from([("archive".to_string(), vec![marker])]),
            )])
        } else {
            Default::default()
        },
        namespaces: if doc.archive_page {
            std::collections::BTreeMap::from([("fh".to_string(), super::HISTORY_NS.to_string())])
        } else {
            Default::default()
        },
        lang: Some(feed_lang.clone()),
        entries,
        ..Default::default()
    };
    let config = WriteConfig { write_document_declaration: true, indent_size: Some(2) };
    let mut out = feed.write_with_config(Vec::new(), config).map_err(|e| format!("Atom writer: {e}"))?;
    out.push(b'\n');
    Ok(out)
}

/// A text construct. Text with `<` or `&` is sent as escaped HTML: RFC 4287 allows either, but
/// readers (and the W3C validator) take markup-like plain text for undeclared HTML.
fn text_construct(value: &str, lang: Option<String>) -> Text {
    if value.contains(['<', '&']) {
        Text { value: escape_html(value), lang, r#type: TextType::Html, ..Default::default() }
    } else {
        Text { value: value.to_string(), lang, r#type: TextType::Text, ..Default::default() }
    }
}
