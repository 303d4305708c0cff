//! Retention: removing a source's old articles, remembering their keys so a poll does not
//! bring them back, and counting the removals (the open check allows for them).

use chrono::{DateTime, Utc};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::articles::id_key;
use super::{Error, Store, keys};
use crate::article;

impl Store {
    /// Removes a source's articles beyond the newest `max_items` and those published before
    /// `older_than`. Their keys are remembered, so a later poll does not bring them back.
    /// Returns the removed keys.
    pub fn prune(
        &self,
        source: &str,
        max_items: Option<usize>,
        older_than: Option<DateTime<Utc>>,
    ) -> Result<Vec<String>, Error> {
        let _writing = self.writing();
        let mut index: Vec<sled::IVec> = Vec::new();
        for k in self.by_source.scan_prefix(keys::by_source_prefix(source)).keys() {
            index.push(k.map_err(|e| self.err(e))?);
        }
        let excess = max_items.map_or(0, |m| index.len().saturating_sub(m));
        let mut removed = Vec::new();
        let now = Utc::now().timestamp_millis().to_be_bytes();
        for (i, k) in index.iter().enumerate() {
            let key = keys::key_of_by_source(k).ok_or_else(|| self.corrupt("a by_source key is not UTF-8"))?;
            let Some(a) = self.get(key)? else { continue };
            let too_old = older_than.is_some_and(|t| a.published.with_timezone(&Utc) < t);
            if i >= excess && !too_old {
                continue;
            }
            let trees =
                (&self.articles, &self.by_date, &self.by_source, &self.pruned, &self.links, &self.stories, &self.meta);
            let result = trees.transaction(|(articles, by_date, by_source, pruned, links, stories, meta)| {
                // Counted in the same transaction, so the open check allows for exactly these.
                let removed = meta.get("removed")?.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok());
                meta.insert("removed", &(removed.map_or(0, u64::from_be_bytes) + 1).to_be_bytes())?;
                articles.remove(a.key.as_bytes())?;
                by_date.remove(keys::by_date(&a.published, &a.key))?;
                by_source.remove(&k[..])?;
                pruned.insert(a.key.as_bytes(), &now)?;
                let link = article::link_key(&a.link);
                let story = article::story_key(&a);
                let id = Some(id_key(&a.id).into_bytes());
                for (tree, ik) in
                    [(links, link.map(String::into_bytes)), (links, id), (stories, story.map(|h| h.to_vec()))]
                {
                    if let Some(ik) = ik
                        && tree.get(&ik)?.is_some_and(|v| v == a.key.as_bytes())
                    {
                        tree.remove(ik)?;
                    }
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            });
            result.map_err(|e| match e {
                TransactionError::Abort(()) => self.corrupt("prune aborted"),
                TransactionError::Storage(e) => self.err(e),
            })?;
            {
                let mut c = self.counts();
                c.articles = c.articles.saturating_sub(1);
                c.removed += 1;
            }
            for h in self.history.scan_prefix(keys::history_prefix(&a.key)).keys() {
                let h = h.map_err(|e| self.err(e))?;
                self.history.remove(h).map_err(|e| self.err(e))?;
            }
            removed.push(a.key);
        }
        Ok(removed)
    }
}
