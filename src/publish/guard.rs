//! The publish guard, a second line of defence behind the store's own damage checks: a feed never
//! loses items without a recorded cause. A publish that would leave a feed with fewer items than
//! it last published, while the feed is not full, is refused unless every item that went is
//! explained: retention removed articles since, the feed's selection in the config changed, the
//! article is still stored but no longer selected (an edit moved it out), or the store was
//! rebuilt. A refused feed keeps its previous documents, on disk and in the server.

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
    let Some(path) = on_disk else { return Ok(None) };
    let Ok(bytes) = std::fs::read(path) else { return Ok(None) };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return Ok(None) };
    let ids =
        doc["items"].as_array().map(|items| items.iter().filter_map(|i| i["id"].as_str().map(String::from)).collect());
    // Without a record, the selection and the removals then are unknown: taken as unchanged.
    Ok(ids.map(|ids| Published { ids, selection: selection(feed), removed: store.removed() }))
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
    if n >= prev.ids.len() || n >= feed.limit || prev.selection != selection(feed) || store.removed() != prev.removed {
        return Ok(());
    }
    let now: std::collections::HashSet<&str> = selected.iter().map(|a| a.id.as_str()).collect();
    let mut unexplained = Vec::new();
    for id in prev.ids.iter().filter(|id| !now.contains(id.as_str())) {
        let moved_out = match store.by_id(id) {
            Ok(Some(a)) => !super::selects(feed, &a),
            Ok(None) => false,
            Err(e) => return Err(format!("the store cannot say what became of {id}: {e}")),
        };
        if !moved_out {
            unexplained.push(id.as_str());
        }
    }
    if unexplained.is_empty() {
        return Ok(());
    }
    Err(format!(
        "it would have {n} items where it has {}, and {} of them went without a recorded cause (no retention, no \
         change of the feed's selection, still selected if stored), such as {}; the previous documents stay. Run \
         `siar verify`",
        prev.ids.len(),
        unexplained.len(),
        unexplained.iter().take(3).copied().collect::<Vec<_>>().join(", ")
    ))
}

/// The record of what was just published.
pub fn record(feed: &Feed, store: &Store, published: &[Article]) -> Published {
    Published {
        ids: published.iter().map(|a| a.id.clone()).collect(),
        selection: selection(feed),
        removed: store.removed(),
    }
}
