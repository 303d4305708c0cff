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

/// What the walk reports for each wanted element: its parent's name, its name, its text.
type Field<'t> = (&'t [u8], &'t [u8], &'t str);

/// Walks an XML document without building it (quick-xml events): it must be well-formed (names,
/// attributes, only the five predefined entities and character references, no DOCTYPE), its root
/// must be `root`, and every `(parent, name)` in `wanted` is handed to `field` with its text.
/// Returns how many `record` elements it saw.
fn walk(
    bytes: &[u8],
    root: &[u8],
    record: &[u8],
    wanted: &[(&[u8], &[u8])],
    mut field: impl FnMut(usize, Field) -> Result<(), String>,
) -> Result<usize, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut stack: Vec<Vec<u8>> = Vec::with_capacity(8);
    let mut text = String::new();
    let mut capturing = false;
    let mut records = 0;
    let at = |r: &quick_xml::Reader<&[u8]>| r.buffer_position();
    loop {
        let event = reader.read_event().map_err(|e| format!("not well-formed at byte {}: {e}", at(&reader)))?;
        match event {
            Event::Start(e) | Event::Empty(e) if stack.is_empty() && e.name().as_ref() != root => {
                return Err(format!(
                    "the root element is <{}>, expected <{}>",
                    String::from_utf8_lossy(e.name().as_ref()),
                    String::from_utf8_lossy(root)
                ));
            }
            Event::Start(e) => {
                for a in e.attributes() {
                    a.map_err(|err| format!("bad attribute at byte {}: {err}", at(&reader)))?;
                }
                let name = e.name().as_ref().to_vec();
                if name == record {
                    records += 1;
                }
                let parent = stack.last().map_or(&b""[..], Vec::as_slice);
                capturing = wanted.iter().any(|&(p, n)| p == parent && n == name.as_slice());
                text.clear();
                stack.push(name);
            }
            Event::Empty(e) => {
                for a in e.attributes() {
                    a.map_err(|err| format!("bad attribute at byte {}: {err}", at(&reader)))?;
                }
                let parent = stack.last().map_or(&b""[..], Vec::as_slice);
                if wanted.iter().any(|&(p, n)| p == parent && n == e.name().as_ref()) {
                    field(records, (parent, e.name().as_ref(), ""))?;
                }
            }
            Event::End(_) => {
                let name = stack.pop().ok_or("an end tag without a start")?;
                if capturing {
                    let parent = stack.last().map_or(&b""[..], Vec::as_slice);
                    field(records, (parent, &name, &text))?;
                    capturing = false;
                }
            }
            Event::Text(t) if capturing => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::CData(t) if capturing => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c,
                    None => match &*r {
                        b"amp" => '&',
                        b"lt" => '<',
                        b"gt" => '>',
                        b"quot" => '"',
                        b"apos" => '\'',
                        other => return Err(format!("undefined entity &{};", String::from_utf8_lossy(other))),
                    },
                };
                if capturing {
                    text.push(c);
                }
            }
            Event::DocType(_) => return Err("a DOCTYPE declaration".into()),
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    Ok(records)
}

fn nonempty(what: &str, text: &str) -> Result<(), String> {
    if text.trim().is_empty() { Err(format!("{what} is empty")) } else { Ok(()) }
}

fn iri(what: &str, text: &str) -> Result<(), String> {
    if text.contains(':') && !text.trim().is_empty() && !text.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(format!("{what} {text:?} is not an IRI"))
    }
}

/// RSS 2.0: well-formed; channel title, link, description; each item a title, a guid and an RFC 822 pubDate.
pub fn rss(bytes: &[u8], items: usize) -> Result<(), String> {
    check_chars(utf8(bytes)?)?;
    let mut seen = vec![[false; 3]; items + 1];
    let wanted: &[(&[u8], &[u8])] = &[
        (b"channel", b"title"),
        (b"channel", b"link"),
        (b"channel", b"description"),
        (b"item", b"title"),
        (b"item", b"guid"),
        (b"item", b"pubDate"),
    ];
    let mut channel = [false; 3];
    let found = walk(bytes, b"rss", b"item", wanted, |n, (parent, name, text)| {
        let slot = match name {
            b"title" => 0,
            b"link" | b"guid" => 1,
            _ => 2,
        };
        if parent == b"channel" {
            nonempty(&format!("channel {}", String::from_utf8_lossy(name)), text)?;
            channel[slot] = true;
            return Ok(());
        }
        let what = format!("item {n} {}", String::from_utf8_lossy(name));
        nonempty(&what, text)?;
        if name == b"pubDate" && DateTime::parse_from_rfc2822(text.trim()).is_err() {
            return Err(format!("{what} {text:?} is not an RFC 822 date"));
        }
        if let Some(s) = seen.get_mut(n) {
            s[slot] = true;
        }
        Ok(())
    })?;
    if found != items {
        return Err(format!("{found} items written, {items} expected"));
    }
    if let Some(i) = channel.iter().position(|&s| !s) {
        return Err(format!("channel {} is missing", ["title", "link", "description"][i]));
    }
    if let Some(n) = (1..=items).find(|&n| seen[n] != [true; 3]) {
        return Err(format!("item {n} lacks a title, guid or pubDate"));
    }
    Ok(())
}

/// Atom 1.0: well-formed; feed id, title, updated; each entry an id (IRI), a title, an RFC 3339
/// `updated` that is not the 1970 default, and an author name (or the feed's).
pub fn atom(bytes: &[u8], items: usize) -> Result<(), String> {
    check_chars(utf8(bytes)?)?;
    let wanted: &[(&[u8], &[u8])] = &[
        (b"feed", b"id"),
        (b"feed", b"title"),
        (b"feed", b"updated"),
        (b"entry", b"id"),
        (b"entry", b"title"),
        (b"entry", b"updated"),
        (b"author", b"name"),
    ];
    let mut feed = [false; 3];
    let mut feed_author = false;
    let mut seen = vec![[false; 4]; items + 1];
    let found = walk(bytes, b"feed", b"entry", wanted, |n, (parent, name, text)| {
        let what = format!(
            "{} {}",
            if n == 0 { "feed".to_string() } else { format!("entry {n}") },
            String::from_utf8_lossy(name)
        );
        let slot = match name {
            b"id" => 0,
            b"title" => 1,
            b"updated" => 2,
            _ => 3,
        };
        match name {
            b"id" => iri(&what, text)?,
            b"updated" => match DateTime::parse_from_rfc3339(text.trim()) {
                Ok(d) if d.timestamp() != 0 => {}
                _ => return Err(format!("{what} {text:?} is not a plausible RFC 3339 date")),
            },
            _ => nonempty(&what, text)?,
        }
        if n == 0 {
            if parent == b"author" {
                feed_author = true;
            } else {
                feed[slot] = true;
            }
        } else if let Some(s) = seen.get_mut(n) {
            s[slot] = true;
        }
        Ok(())
    })?;
    if found != items {
        return Err(format!("{found} entries written, {items} expected"));
    }
    if let Some(i) = feed.iter().position(|&s| !s) {
        return Err(format!("feed {} is missing", ["id", "title", "updated"][i]));
    }
    if let Some(n) = (1..=items).find(|&n| !(seen[n][..3] == [true; 3] && (seen[n][3] || feed_author))) {
        return Err(format!("entry {n} lacks an id, title, updated or author"));
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
        assert!(atom(atom_default.as_bytes(), 0).is_err(), "the crate's defaults never pass");
        let feed = |id: &str, updated: &str, entry: &str| {
            format!(
                "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>t</title><id>{id}</id><updated>{updated}</updated>\
                 <author><name>a</name></author>{entry}</feed>"
            )
        };
        let ok_entry =
            "<entry><id>tag:x.org,2026:a</id><title>t</title><updated>2026-11-27T00:00:00Z</updated></entry>";
        let good_feed = feed("tag:x.org,2026:f", "2026-11-27T00:00:00Z", ok_entry);
        assert_eq!(atom(good_feed.as_bytes(), 1), Ok(()));
        assert!(atom(feed("", "2026-11-27T00:00:00Z", "").as_bytes(), 0).unwrap_err().contains("id"));
        let epoch = feed("tag:x.org,2026:f", "1970-01-01T00:00:00+00:00", "");
        assert!(atom(epoch.as_bytes(), 0).unwrap_err().contains("updated"));
        assert!(atom(good_feed.as_bytes(), 2).unwrap_err().contains("1 entries"));
        let nbsp = feed("tag:x.org,2026:f", "2026-11-27T00:00:00Z", &ok_entry.replace("<title>t", "<title>a&nbsp;b"));
        assert!(atom(nbsp.as_bytes(), 1).unwrap_err().contains("entity"));
        let broken = feed("tag:x.org,2026:f", "2026-11-27T00:00:00Z", "<entry><id>x:y</id></feed>");
        assert!(atom(broken.as_bytes(), 1).unwrap_err().contains("well-formed"), "mismatched end tag");
        assert!(rss(good_feed.as_bytes(), 0).unwrap_err().contains("root"));
        assert!(
            json(b"{\"version\":\"https://jsonfeed.org/version/1.1\",\"title\":\"t\",\"items\":[{\"id\":\"\"}]}", 1)
                .is_err()
        );
    }
}
