//! Article list -> JSON Feed 1.1 bytes (serde_json; field order fixed by the structs).

use chrono::SecondsFormat;
use serde::Serialize;

use super::FeedDoc;

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: &'a str,
    /// The next older page (RFC 5005 prev-archive; JSON Feed pages backwards in time).
    #[serde(skip_serializing_if = "Option::is_none")]
    next_url: Option<&'a str>,
    description: &'a str,
    language: &'a str,
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<Hub<'a>>,
    items: Vec<JsonItem<'a>>,
}

#[derive(Serialize)]
struct Hub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct Author<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct JsonItem<'a> {
    id: &'a str,
    url: &'a str,
    title: &'a str,
    content_html: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    summary: &'a str,
    date_published: String,
    date_modified: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'a str>,
    language: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<Attachment<'a>>,
    #[serde(rename = "_siar", skip_serializing_if = "Option::is_none")]
    siar: Option<Extension<'a>>,
}

#[derive(Serialize)]
struct Attachment<'a> {
    url: &'a str,
    mime_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_in_bytes: Option<u64>,
}

/// The JSON Feed extension: attribution and provenance of aggregated items.
#[derive(Serialize)]
struct Extension<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<SourceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin_id: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    provenance: &'a [crate::article::Provenance],
}

#[derive(Serialize)]
struct SourceOut<'a> {
    name: &'a str,
    url: &'a str,
    title: &'a str,
}

pub fn render(doc: &FeedDoc) -> Result<Vec<u8>, String> {
    let items = doc
        .articles
        .iter()
        .map(|a| JsonItem {
            id: &a.id,
            url: &a.link,
            title: &a.title,
            content_html: &a.content_html,
            summary: &a.summary,
            date_published: a.published.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            date_modified: a.updated.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            authors: a.authors.iter().map(|n| Author { name: n }).collect(),
            tags: doc.categories(a).collect(),
            language: &a.language,
            attachments: a
                .enclosures
                .iter()
                .map(|e| Attachment {
                    url: &e.url,
                    mime_type: &e.mime,
                    size_in_bytes: (e.length > 0).then_some(e.length),
                })
                .collect(),
            siar: (a.via.is_some() || !a.provenance.is_empty()).then(|| Extension {
                source: a.via.as_ref().map(|v| SourceOut { name: &v.name, url: &v.url, title: &v.title }),
                origin_id: a.origin_id.as_deref().filter(|o| *o != a.id),
                provenance: &a.provenance,
            }),
        })
        .collect();
    let feed = JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: &doc.feed.title,
        home_page_url: doc.site.link.as_str(),
        feed_url: &doc.urls.json,
        next_url: doc.history.iter().find(|(rel, _)| *rel == "prev-archive").map(|(_, u)| u.json.as_str()),
        description: &doc.feed.description,
        language: &doc.site.language,
        authors: vec![Author { name: &doc.site.author }],
        hubs: doc.hubs.iter().map(|h| Hub { kind: "WebSub", url: h.as_str() }).collect(),
        items,
    };
    let mut out = serde_json::to_vec_pretty(&feed).map_err(|e| format!("JSON writer: {e}"))?;
    out.push(b'\n');
    Ok(out)
}
