//! The publish guard, a second line of defence behind the store's own damage checks: a feed never
//! loses items without a recorded cause. A publish that would leave a feed with fewer items than
//! it last published, while the feed is not full, is refused unless every item that went is
//! explained: retention removed it, the feed's selection in the config changed, or the article is
//! still stored but no longer selected (an edit moved it out of the feed, or `per_source_limit`
//! keeps it out); after a rebuild or an import the first publish is the new baseline. A refused
//! feed keeps its previous documents, on disk and in the server.

use std::collections::HashMap;

use crate::article::Article;
use crate::config::Feed;
use crate::store::{Published, Store};

/// The feed's selection in the config, as a fingerprint: a change explains a different feed.
pub fn selection(feed: &Feed) -> String {
    let text = format!(
        "{:?}|{:?}|{:?}|{:?}|{}|{:?}",
        feed.categories, feed.languages, feed.sources, feed.per_source_limit, feed.limit, feed.access
    );
    blake3::hash(text.as_bytes()).to_hex()[..16].to_string()
}

/// What the feed published last: the store's record, else (a store that has none yet: new, or
/// from a siar before the guard) the ids of the feed file on disk.
fn previous(feed: &Feed, store: &Store, on_disk: Option<&std::path::Path>) -> Result<Option<Published>, String> {
    if let Some(p) = store.published(&feed.name).map_err(|e| e.to_string())? {
        return Ok(Some(p));
    }
    if store.rebuilt().map_err(|e| e.to_string())? {
        return Ok(None);
    }
    // Without a record the selection then is unknown: taken as unchanged.
    Ok(on_disk.and_then(super::ondisk::ids_in_json_feed).map(|ids| Published {
        ids,
        keys: Vec::new(),
        selection: selection(feed),
    }))
}

/// `Err(why)` when publishing `selected` would lose items without a recorded cause.
pub fn check(
    feed: &Feed,
    store: &Store,
    selected: &[Article],
    on_disk: Option<&std::path::Path>,
) -> Result<(), String> {
    let Some(prev) = previous(feed, store, on_disk)? else { return Ok(()) };
    let n = selected.len();
    if n >= prev.ids.len() || n >= feed.limit || prev.selection != selection(feed) {
        return Ok(());
    }
    let now: std::collections::HashSet<&str> = selected.iter().map(|a| a.id.as_str()).collect();
    let mut per_source: HashMap<&str, usize> = HashMap::new();
    for a in selected {
        *per_source.entry(a.source.as_str()).or_default() += 1;
    }
    let store_err = |e: crate::store::Error| format!("the store cannot say what became of an item: {e}");
    let mut unexplained = Vec::new();
    for (i, id) in prev.ids.iter().enumerate().filter(|(_, id)| !now.contains(id.as_str())) {
        let article = match prev.keys.get(i) {
            Some(key) => store.get(key).map_err(store_err)?,
            None => store.by_id(id).map_err(store_err)?,
        };
        let explained = match (&article, prev.keys.get(i)) {
            // Still stored: an edit moved it out of the feed, or its source is at its cap.
            (Some(a), _) => {
                !super::selects(feed, a)
                    || feed
                        .per_source_limit
                        .is_some_and(|cap| per_source.get(a.source.as_str()).copied().unwrap_or(0) >= cap)
            }
            (None, Some(key)) => store.is_pruned(key).map_err(store_err)?,
            // A baseline from disk names ids only, and retention forgets a removed item's id.
            (None, None) => store.has_pruned(),
        };
        if !explained {
            unexplained.push(id.as_str());
        }
    }
    if unexplained.is_empty() {
        return Ok(());
    }
    Err(format!(
        "it would have {n} items where it has {}, and {} of them went without a recorded cause (not removed by \
         retention, the feed's selection unchanged, still selected if stored), such as {}; the previous documents \
         stay. Run `siar verify`",
        prev.ids.len(),
        unexplained.len(),
        unexplained.iter().take(3).copied().collect::<Vec<_>>().join(", ")
    ))
}

/// The record of what was just published.
pub fn record(feed: &Feed, published: &[Article]) -> Published {
    Published {
        ids: published.iter().map(|a| a.id.clone()).collect(),
        keys: published.iter().map(|a| a.key.clone()).collect(),
        selection: selection(feed),
    }
}
