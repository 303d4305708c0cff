//! The merge policy: what an incoming article becomes beside what is stored. A pure function of
//! (stored, another source's copy of the story, incoming, now); `articles.rs` does the reads and
//! writes around it.

use chrono::{DateTime, Timelike, Utc};

use super::Put;
use crate::article::{Article, Provenance};

/// What to do with an incoming article.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// A new article: store it as version 1.
    Insert(Article),
    /// Nothing a reader sees changed.
    Unchanged,
    /// A new version of the stored article (which goes to history).
    Update(Article),
    /// Another source told this story first: that article, with this source in its provenance.
    Merge(Article),
}

/// `stored`: the article under the incoming key; `first`: an article of another source telling
/// the same story (looked up only when nothing is stored under the key and the item is external).
pub fn decide(stored: Option<&Article>, first: Option<Article>, put: &Put, now: DateTime<Utc>) -> Decision {
    let mut incoming = put.article.clone();
    match stored {
        None => {
            if let Some(mut first) = first {
                // The first-seen version stays the published one; this source is recorded.
                let via = incoming.via.as_ref();
                first.provenance.push(Provenance {
                    source: incoming.source.clone(),
                    url: via.map(|v| v.url.clone()).unwrap_or_default(),
                    origin_id: incoming.origin_id.clone().unwrap_or_default(),
                    link: incoming.link.clone(),
                    seen: now,
                });
                return Decision::Merge(first);
            }
            incoming.version = 1;
            Decision::Insert(incoming)
        }
        Some(old) if old.digest == incoming.digest && (!put.explicit_date || old.published == incoming.published) => {
            Decision::Unchanged
        }
        Some(old) => {
            // Keep the public id and, unless the new version names its own date, the first date.
            incoming.id = old.id.clone();
            incoming.version = old.version + 1;
            incoming.provenance = old.provenance.clone();
            if !put.explicit_date {
                incoming.published = old.published;
            }
            // Later than the last version, even for many edits within one second (milliseconds).
            let floor = old.updated + chrono::Duration::milliseconds(1);
            let now_ms = now.with_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(now);
            incoming.updated = now_ms.max(floor);
            Decision::Update(incoming)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(slug: &str, title: &str, published: &str) -> Put {
        Put::new(Article::sample(slug, title, published, "A"), false, None, true)
    }

    #[test]
    fn new_unchanged_and_edited() {
        let now = Utc::now();
        let p = put("a", "First", "2026-11-01T00:00:00Z");
        let Decision::Insert(a) = decide(None, None, &p, now) else { panic!("not inserted") };
        assert_eq!(a.version, 1);
        assert_eq!(decide(Some(&a), None, &p, now), Decision::Unchanged);
        let mut edit = put("a", "First, corrected", "2026-11-05T00:00:00Z");
        edit.article.id = "tag:other".into();
        let Decision::Update(b) = decide(Some(&a), None, &edit, now) else { panic!("not updated") };
        assert_eq!((b.id.as_str(), b.version, b.published), (a.id.as_str(), 2, a.published));
        assert!(b.updated > a.updated);
        // Many edits in one millisecond still move forward.
        let Decision::Update(c) = decide(Some(&b), None, &put("a", "Third", "2026-11-05T00:00:00Z"), now) else {
            panic!("not updated")
        };
        assert!(c.updated > b.updated);
    }

    #[test]
    fn another_sources_story_is_merged_into_the_first() {
        let first = Article::sample("x", "Story", "2026-11-01T00:00:00Z", "A");
        let mut p = put("y", "Story", "2026-11-01T00:00:00Z");
        p.article.source = "wire".into();
        let Decision::Merge(m) = decide(None, Some(first.clone()), &p, Utc::now()) else { panic!("not merged") };
        assert_eq!(m.key, first.key);
        assert_eq!(m.provenance.len(), 1);
        assert_eq!(m.provenance[0].source, "wire");
    }
}
