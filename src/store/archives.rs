//! RFC 5005 archive pages per feed, and the bookkeeping of which public feeds the output
//! directory holds.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{Error, Store, keys};
use crate::article::Article;

/// One article of a page: its key alone (pages cut before versions were kept) or with the version.
#[derive(Deserialize)]
#[serde(untagged)]
enum PageEntry {
    Key(String),
    Versioned(String, u32),
}

/// A page's articles, each with the version it was cut with (`None` for pages cut before).
pub type Page = Vec<(String, Option<u32>)>;

pub(super) fn decode_page(bytes: &[u8]) -> Result<Page, serde_json::Error> {
    let entries: Vec<PageEntry> = serde_json::from_slice(bytes)?;
    Ok(entries
        .into_iter()
        .map(|e| match e {
            PageEntry::Key(k) => (k, None),
            PageEntry::Versioned(k, v) => (k, Some(v)),
        })
        .collect())
}

/// Where a feed's archive stands: the window last published, the articles waiting for a page
/// (with when they started waiting, ms), how many pages exist.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArchiveState {
    pub window: Vec<String>,
    pub pending: Vec<(String, i64)>,
    pub pages: u32,
}

/// What a feed last published: its items' ids and keys, and what selected them. The publish
/// guard compares the next publish with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Published {
    pub ids: Vec<String>,
    /// The articles' keys, in the order of `ids` (empty for a baseline read from disk).
    #[serde(default)]
    pub keys: Vec<String>,
    /// A fingerprint of the feed's selection in the config (selectors and limits).
    pub selection: String,
}

fn published_key(feed: &str) -> Vec<u8> {
    format!("published\0{feed}").into_bytes()
}

impl Store {
    pub fn published(&self, feed: &str) -> Result<Option<Published>, Error> {
        match self.meta.get(published_key(feed)).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| self.corrupt(format!("published {feed}: {e}"))),
        }
    }

    pub fn set_published(&self, feed: &str, record: &Published) -> Result<(), Error> {
        let bytes = serde_json::to_vec(record).map_err(|e| self.corrupt(e))?;
        self.meta.insert(published_key(feed), bytes).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Whether this store was rebuilt or imported and has not published since: the feeds on disk
    /// then came from another store, and what they held is no baseline.
    pub fn rebuilt(&self) -> Result<bool, Error> {
        self.meta.contains_key("rebuilt").map_err(|e| self.err(e))
    }

    pub fn set_rebuilt(&self, rebuilt: bool) -> Result<(), Error> {
        if rebuilt {
            self.meta.insert("rebuilt", Utc::now().to_rfc3339().as_bytes()).map_err(|e| self.err(e))?;
        } else {
            self.meta.remove("rebuilt").map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The stored article that carries this public id.
    pub fn by_id(&self, id: &str) -> Result<Option<Article>, Error> {
        match self.links.get(super::articles::id_key(id).as_bytes()).map_err(|e| self.err(e))? {
            Some(k) => self.get(&String::from_utf8_lossy(&k)),
            None => Ok(None),
        }
    }

    /// Whether retention has removed any article.
    pub fn has_pruned(&self) -> bool {
        !self.pruned.is_empty()
    }

    pub fn archive_state(&self, feed: &str) -> Result<ArchiveState, Error> {
        // A test's failpoint makes the store forget where archives stand.
        if crate::failpoint::active("store-archive-reset") {
            return Ok(ArchiveState::default());
        }
        match self.archives.get(keys::archive_state(feed)).map_err(|e| self.err(e))? {
            None => Ok(ArchiveState::default()),
            Some(b) => serde_json::from_slice(&b).map_err(|e| self.corrupt(format!("archive of {feed}: {e}"))),
        }
    }

    pub fn put_archive_state(&self, feed: &str, state: &ArchiveState) -> Result<(), Error> {
        let bytes = serde_json::to_vec(state).map_err(|e| self.corrupt(e))?;
        self.archives.insert(keys::archive_state(feed), bytes).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records page `n` of a feed's archive, with the version of each article it was cut with,
    /// and marks its articles as archived.
    pub fn put_archive_page(&self, feed: &str, n: u32, page: &[(String, u32)]) -> Result<(), Error> {
        let bytes = serde_json::to_vec(page).map_err(|e| self.corrupt(e))?;
        self.archives.insert(keys::archive_page(feed, n), bytes).map_err(|e| self.err(e))?;
        for (k, _) in page {
            self.archives.insert(keys::archived(feed, k), &n.to_be_bytes()).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Page `n`'s articles and the versions they were cut with (`None`: a page cut before siar
    /// recorded versions, which shows the newest).
    pub fn archive_page(&self, feed: &str, n: u32) -> Result<Option<Page>, Error> {
        match self.archives.get(keys::archive_page(feed, n)).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(b) => decode_page(&b).map(Some).map_err(|e| self.corrupt(format!("archive of {feed}: {e}"))),
        }
    }

    /// An article as it was at `version` (its newest when `None` or when that is the version).
    pub fn article_at(&self, key: &str, version: Option<u32>) -> Result<Option<Article>, Error> {
        let Some(a) = self.get(key)? else { return Ok(None) };
        match version {
            Some(v) if v < a.version => match self.history.get(keys::history(key, v)).map_err(|e| self.err(e))? {
                Some(b) => {
                    serde_json::from_slice(&b).map(Some).map_err(|e| self.corrupt(format!("history of {key}: {e}")))
                }
                None => Ok(Some(a)),
            },
            _ => Ok(Some(a)),
        }
    }

    /// The archive page holding the article, if one was cut for it.
    pub fn archived_on(&self, feed: &str, key: &str) -> Result<Option<u32>, Error> {
        Ok(self
            .archives
            .get(keys::archived(feed, key))
            .map_err(|e| self.err(e))?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok().map(u32::from_be_bytes)))
    }

    /// The public feeds whose files the output directory `output` holds (none recorded for
    /// another directory): a feed that leaves the config can have its files taken away.
    pub fn feeds_on_disk(&self, output: &Path) -> Result<Vec<String>, Error> {
        let Some(b) = self.meta.get("on_disk").map_err(|e| self.err(e))? else { return Ok(Vec::new()) };
        let (dir, feeds): (PathBuf, Vec<String>) = serde_json::from_slice(&b).map_err(|e| self.corrupt(e))?;
        Ok(if dir == output { feeds } else { Vec::new() })
    }

    pub fn set_feeds_on_disk(&self, output: &Path, feeds: &[String]) -> Result<(), Error> {
        let bytes = serde_json::to_vec(&(output, feeds)).map_err(|e| self.corrupt(e))?;
        self.meta.insert("on_disk", bytes).map_err(|e| self.err(e))?;
        Ok(())
    }
}
