//! OPML 2.0 for moving source lists between siar and other readers: read the feeds of an OPML
//! file (nested outlines name their category), write the configured sources, and turn imported
//! feeds into `[[source]]` tables appended to the config.

use quick_xml::events::Event;

use crate::article::{escape_html, slugify};
use crate::config::Config;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outline {
    pub title: String,
    pub url: String,
    pub category: Option<String>,
}

/// The feeds (outlines with `xmlUrl`) of an OPML document.
pub fn read(bytes: &[u8]) -> Result<Vec<Outline>, String> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut groups: Vec<Option<String>> = Vec::new();
    let mut out = Vec::new();
    let mut saw_opml = false;
    loop {
        let event =
            reader.read_event().map_err(|e| format!("not well-formed at byte {}: {e}", reader.buffer_position()))?;
        let (e, is_start) = match event {
            Event::Start(e) => (e, true),
            Event::Empty(e) => (e, false),
            Event::End(e) => {
                if e.name().as_ref() == b"outline" {
                    groups.pop();
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        match e.name().as_ref() {
            b"opml" => saw_opml = true,
            b"outline" => {
                let mut attr = std::collections::HashMap::new();
                for a in e.attributes().flatten() {
                    let value = a
                        .decoded_and_normalized_value(quick_xml::XmlVersion::Implicit1_0, reader.decoder())
                        .map_err(|e| e.to_string())?
                        .into_owned();
                    attr.insert(String::from_utf8_lossy(a.key.as_ref()).to_lowercase(), value);
                }
                let title = attr.get("title").or_else(|| attr.get("text")).cloned().unwrap_or_default();
                match attr.get("xmlurl") {
                    Some(url) if !url.trim().is_empty() => {
                        let category = attr
                            .get("category")
                            .map(|c| c.split(',').next().unwrap_or_default().trim_matches('/').trim().to_string())
                            .filter(|c| !c.is_empty())
                            .or_else(|| groups.iter().rev().flatten().next().cloned());
                        out.push(Outline { title: title.trim().to_string(), url: url.trim().to_string(), category });
                        if is_start {
                            groups.push(None);
                        }
                    }
                    _ if is_start => groups.push(Some(title.trim().to_string()).filter(|t| !t.is_empty())),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if !saw_opml {
        return Err("no <opml> element: not an OPML file".into());
    }
    Ok(out)
}

/// OPML 2.0 of the configured sources.
pub fn write(cfg: &Config) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n  <head>\n");
    out += &format!("    <title>{} sources</title>\n", escape_html(&cfg.site.title));
    out += "  </head>\n  <body>\n";
    for s in &cfg.sources {
        out += &format!(
            "    <outline type=\"rss\" text=\"{0}\" title=\"{0}\" xmlUrl=\"{1}\"{2}/>\n",
            escape_html(&s.name),
            escape_html(s.url.as_str()),
            s.category.as_ref().map(|c| format!(" category=\"{}\"", escape_html(c))).unwrap_or_default()
        );
    }
    out += "  </body>\n</opml>\n";
    out
}

/// OPML 2.0 of the public feeds siar publishes (keyed feeds are never listed), Atom first.
pub fn feeds(cfg: &Config) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n  <head>\n");
    out += &format!("    <title>{} feeds</title>\n", escape_html(&cfg.site.title));
    out += "  </head>\n  <body>\n";
    for f in cfg.feeds.iter().filter(|f| f.access == crate::config::Access::Public) {
        for (ext, kind) in [("atom", "Atom"), ("rss", "RSS"), ("json", "JSON Feed")] {
            out += &format!(
                "    <outline type=\"rss\" text=\"{0}\" title=\"{0}\" xmlUrl=\"{1}\" htmlUrl=\"{2}\"/>\n",
                escape_html(&format!("{} ({kind})", f.title)),
                escape_html(&f.url(&cfg.publish, ext)),
                escape_html(cfg.site.link.as_str()),
            );
        }
    }
    out += "  </body>\n</opml>\n";
    out
}

/// `[[source]]` tables for the outlines whose URL is not configured yet, with unique names.
/// Returns the TOML text and how many were skipped as already present.
pub fn to_sources(cfg: &Config, outlines: &[Outline]) -> (String, Vec<String>, usize) {
    let mut taken: Vec<String> = cfg.sources.iter().map(|s| s.name.clone()).collect();
    let mut urls: Vec<String> = cfg.sources.iter().map(|s| s.url.to_string()).collect();
    let (mut text, mut added, mut skipped) = (String::new(), Vec::new(), 0);
    for o in outlines {
        let Ok(url) = url::Url::parse(&o.url) else {
            skipped += 1;
            continue;
        };
        if urls.contains(&url.to_string()) {
            skipped += 1;
            continue;
        }
        let mut base: String = slugify(if o.title.is_empty() { url.host_str().unwrap_or("feed") } else { &o.title })
            .chars()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
            .take(56)
            .collect();
        if base.is_empty() || base == crate::article::DROP_SOURCE {
            base = "feed".into();
        }
        let mut name = base.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        text += &format!("\n[[source]]\nname = {}\nurl = {}\n", q(&name), q(url.as_str()));
        if let Some(c) = &o.category {
            text += &format!("category = {}\n", q(c));
        }
        taken.push(name.clone());
        urls.push(url.to_string());
        added.push(name);
    }
    (text, added, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_outlines_with_categories() {
        let opml = br#"<?xml version="1.0"?><opml version="2.0"><head/><body>
            <outline text="Nasional"><outline text="Antara &amp; Co" xmlUrl="https://antara.example/rss.xml"/></outline>
            <outline title="Wire" type="rss" xmlUrl="https://wire.example/atom" category="/Dunia"/>
            <outline text="no feed"/>
        </body></opml>"#;
        let got = read(opml).expect("opml");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].title, "Antara & Co");
        assert_eq!(got[0].category.as_deref(), Some("Nasional"));
        assert_eq!(got[1].category.as_deref(), Some("Dunia"));
        assert!(read(b"<rss/>").is_err());
    }
}
