//! The validation gate: every rendered document is parsed back and checked before it may replace
//! the published file. A document that fails is never written; the previous file stays.

use chrono::DateTime;

use crate::article::{has_forbidden, is_forbidden};

/// Characters XML 1.0 forbids must never reach a file (the writers copy them verbatim).
fn check_chars(text: &str) -> Result<(), String> {
    if !has_forbidden(text) {
        return Ok(());
    }
    match text.char_indices().find(|&(_, c)| is_forbidden(c)) {
        Some((at, c)) => Err(format!("character U+{:04X} at byte {at} is not allowed in XML", c as u32)),
        None => Ok(()),
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))
}

pub fn rss(bytes: &[u8], items: usize) -> Result<(), String> {
    check_chars(utf8(bytes)?)?;
    let ch = rss::Channel::read_from(bytes).map_err(|e| format!("not well-formed RSS: {e}"))?;
    for (field, v) in [("title", &ch.title), ("link", &ch.link), ("description", &ch.description)] {
        if v.trim().is_empty() {
            return Err(format!("channel {field} is empty"));
        }
    }
    if ch.items.len() != items {
        return Err(format!("{} items written, {items} expected", ch.items.len()));
    }
    for (i, item) in ch.items.iter().enumerate() {
        let n = i + 1;
        if item.title.as_deref().is_none_or(|t| t.trim().is_empty()) {
            return Err(format!("item {n} has no title"));
        }
        if item.guid.as_ref().is_none_or(|g| g.value.trim().is_empty()) {
            return Err(format!("item {n} has no guid"));
        }
        match item.pub_date.as_deref().map(DateTime::parse_from_rfc2822) {
            Some(Ok(_)) => {}
            _ => return Err(format!("item {n} pubDate {:?} is not an RFC 822 date", item.pub_date)),
        }
    }
    Ok(())
}

pub fn atom(bytes: &[u8], items: usize) -> Result<(), String> {
    check_chars(utf8(bytes)?)?;
    let feed = atom_syndication::Feed::read_from(bytes).map_err(|e| format!("not well-formed Atom: {e}"))?;
    let iri = |s: &str| s.contains(':') && !s.trim().is_empty() && !s.contains(char::is_whitespace);
    if !iri(&feed.id) {
        return Err(format!("feed id {:?} is not an IRI", feed.id));
    }
    if feed.title.value.trim().is_empty() {
        return Err("feed title is empty".into());
    }
    if feed.entries.len() != items {
        return Err(format!("{} entries written, {items} expected", feed.entries.len()));
    }
    if items > 0 && feed.updated.timestamp() == 0 {
        return Err("feed updated is the 1970 default".into());
    }
    for (i, e) in feed.entries.iter().enumerate() {
        let n = i + 1;
        if !iri(&e.id) {
            return Err(format!("entry {n} id {:?} is not an IRI", e.id));
        }
        if e.title.value.trim().is_empty() {
            return Err(format!("entry {n} has no title"));
        }
        if e.authors.is_empty() && feed.authors.is_empty() {
            return Err(format!("entry {n} has no author"));
        }
        if e.updated.timestamp() == 0 {
            return Err(format!("entry {n} updated is the 1970 default"));
        }
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct JsonFeed<'a> {
    #[serde(borrow)]
    version: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    title: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    items: Vec<JsonItem<'a>>,
}

#[derive(serde::Deserialize)]
struct JsonItem<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    /// Required: deserializing fails without it.
    #[serde(borrow)]
    #[allow(dead_code)]
    content_html: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    date_published: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    date_modified: std::borrow::Cow<'a, str>,
}

pub fn json(bytes: &[u8], items: usize) -> Result<(), String> {
    let feed: JsonFeed = serde_json::from_slice(bytes).map_err(|e| format!("not a JSON Feed: {e}"))?;
    if feed.version != "https://jsonfeed.org/version/1.1" || feed.title.trim().is_empty() {
        return Err("version or title missing".into());
    }
    if feed.items.len() != items {
        return Err(format!("{} items written, {items} expected", feed.items.len()));
    }
    for (i, item) in feed.items.iter().enumerate() {
        if item.id.trim().is_empty() {
            return Err(format!("item {} has no id", i + 1));
        }
        for (key, v) in [("date_published", &item.date_published), ("date_modified", &item.date_modified)] {
            if DateTime::parse_from_rfc3339(v).is_err() {
                return Err(format!("item {} {key} is not RFC 3339", i + 1));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_forbidden_characters_and_missing_fields() {
        let bad = "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>a\u{1}</title><link>x</link><description>d</description></channel></rss>";
        assert!(rss(bad.as_bytes(), 0).unwrap_err().contains("U+0001"));
        let empty_desc = "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>a</title><link>x</link><description></description></channel></rss>";
        assert!(rss(empty_desc.as_bytes(), 0).unwrap_err().contains("description"));
        let bad_date = "<rss version=\"2.0\"><channel><title>a</title><link>x</link><description>d</description>\
            <item><title>t</title><guid isPermaLink=\"false\">g</guid><pubDate>yesterday-ish</pubDate></item></channel></rss>";
        assert!(rss(bad_date.as_bytes(), 1).unwrap_err().contains("pubDate"));
        let atom_default = atom_syndication::Feed::default().to_string();
        assert!(atom(atom_default.as_bytes(), 0).unwrap_err().contains("id"));
        assert!(
            json(b"{\"version\":\"https://jsonfeed.org/version/1.1\",\"title\":\"t\",\"items\":[{\"id\":\"\"}]}", 1)
                .is_err()
        );
    }
}
