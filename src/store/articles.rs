//! Articles and their indexes: putting a batch in one transaction (the merge policy itself is
//! `merge::decide`, a pure function), reading articles, their history and the time indexes.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::merge::{self, Decision};
use super::{Error, Outcome, Put, Store, keys};
use crate::article::{self, Article};

type TxResult<T> = Result<T, ConflictableTransactionError<serde_json::Error>>;

/// The trees one put touches, inside its transaction.
struct Tx<'a> {
    articles: &'a TransactionalTree,
    by_date: &'a TransactionalTree,
    by_hash: &'a TransactionalTree,
    history: &'a TransactionalTree,
    links: &'a TransactionalTree,
    stories: &'a TransactionalTree,
    aliases: &'a TransactionalTree,
    pruned: &'a TransactionalTree,
    by_source: &'a TransactionalTree,
}

fn load(tree: &TransactionalTree, key: &[u8]) -> TxResult<Option<Article>> {
    match tree.get(key)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(ConflictableTransactionError::Abort)?)),
    }
}

fn save(tx: &Tx, a: &Article) -> TxResult<()> {
    let bytes = serde_json::to_vec(a).map_err(ConflictableTransactionError::Abort)?;
    tx.articles.insert(a.key.as_bytes(), bytes)?;
    Ok(())
}

/// The public id as a dedupe key (two sources carrying one id carry one item). Ids share the
/// `links` tree, set apart by a prefix no link key has.
pub(super) fn id_key(id: &str) -> String {
    format!("id\0{id}")
}

fn source_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(s, _)| s)
}

/// An article of another source telling the same story (same link, or same title and body).
fn same_story(tx: &Tx, put: &Put) -> TxResult<Option<Article>> {
    let source = &put.article.source;
    let id = Some((tx.links, id_key(&put.article.id).into_bytes()));
    let link = put.link_key.as_ref().map(|k| (tx.links, k.as_bytes().to_vec()));
    let story = put.story_key.map(|k| (tx.stories, k.to_vec()));
    for (tree, k) in id.into_iter().chain(link).chain(story) {
        if let Some(v) = tree.get(&k)?
            && source_of(&String::from_utf8_lossy(&v)) != source
            && let Some(a) = load(tx.articles, &v)?
        {
            return Ok(Some(a));
        }
    }
    Ok(None)
}

fn put_one(tx: &Tx, put: &Put, now: DateTime<Utc>) -> TxResult<Outcome> {
    let key = put.article.key.clone();
    if let Some(hash) = put.file_hash {
        if let Some(k) = tx.by_hash.get(hash)? {
            return Ok(Outcome::Duplicate(String::from_utf8_lossy(&k).into_owned()));
        }
        tx.by_hash.insert(&hash[..], key.as_bytes())?;
    }
    // Retention and cross-source merges concern external sources only.
    let external = put.article.source != article::DROP_SOURCE;
    if external && tx.pruned.get(key.as_bytes())?.is_some() {
        return Ok(Outcome::Pruned(key));
    }
    if external && let Some(canonical) = tx.aliases.get(key.as_bytes())? {
        return Ok(Outcome::Merged(String::from_utf8_lossy(&canonical).into_owned()));
    }
    let stored = load(tx.articles, key.as_bytes())?;
    let first = if stored.is_none() && external { same_story(tx, put)? } else { None };
    let (incoming, inserted) = match merge::decide(stored.as_ref(), first, put, now) {
        Decision::Unchanged => return Ok(Outcome::Unchanged(key)),
        Decision::Merge(first) => {
            save(tx, &first)?;
            tx.aliases.insert(key.as_bytes(), first.key.as_bytes())?;
            return Ok(Outcome::Merged(first.key));
        }
        Decision::Insert(a) => (a, true),
        Decision::Update(a) => {
            let old = stored.as_ref().expect("an update has a stored article");
            let old_bytes = serde_json::to_vec(old).map_err(ConflictableTransactionError::Abort)?;
            tx.history.insert(keys::history(&old.key, old.version), old_bytes)?;
            tx.by_date.remove(keys::by_date(&old.published, &old.key))?;
            tx.by_source.remove(keys::by_source(&old.source, &old.published, &old.key))?;
            (a, false)
        }
    };
    save(tx, &incoming)?;
    tx.by_date.insert(keys::by_date(&incoming.published, &key), &[])?;
    // A test's failpoint damages this index, for `verify` to find.
    if !crate::failpoint::active("store-skip-by-source") {
        tx.by_source.insert(keys::by_source(&incoming.source, &incoming.published, &key), &[])?;
    }
    // Dedupe indexes: the first article with a link, id or story keeps it. A drop article's link
    // and id are its own (minted from its unique slug), so they are written without a look first,
    // and the story index is for external items only (a partner's copy of a newsroom story links
    // to it, or carries its id): ingest speed is the drop folder's first concern.
    for l in put.link_key.iter().cloned().chain([id_key(&incoming.id)]) {
        if !external || tx.links.get(l.as_bytes())?.is_none() {
            tx.links.insert(l.as_bytes(), key.as_bytes())?;
        }
    }
    if let Some(h) = put.story_key.filter(|_| external)
        && tx.stories.get(h)?.is_none()
    {
        tx.stories.insert(&h[..], key.as_bytes())?;
    }
    Ok(if inserted { Outcome::Inserted(incoming) } else { Outcome::Updated(incoming) })
}

impl Store {
    /// Stores one article in one transaction; see `put_many`.
    pub fn put(
        &self,
        incoming: Article,
        explicit_date: bool,
        file_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Outcome, Error> {
        let mut out = self.put_many(&[Put::new(incoming, explicit_date, Some(*file_hash), true)], now)?;
        Ok(out.remove(0))
    }

    /// Stores articles in one transaction (all or none): each is a new article, a new version of
    /// an existing one (same id, `updated` advanced, the old version kept in history), or nothing
    /// when its file bytes or its content were stored before. Outcomes are in input order.
    pub fn put_many(&self, puts: &[Put], now: DateTime<Utc>) -> Result<Vec<Outcome>, Error> {
        let _writing = self.writing();
        // A re-polled feed is mostly items stored before, unchanged: those are answered from a
        // look at the stored digest, outside the transaction (which re-checks the rest).
        let mut known: Vec<Option<Outcome>> = Vec::with_capacity(puts.len());
        for p in puts {
            known.push(if p.file_hash.is_none() { self.known(p)? } else { None });
        }
        if known.iter().all(Option::is_some) {
            return Ok(known.into_iter().flatten().collect());
        }
        let rest: Vec<&Put> = puts.iter().zip(&known).filter(|(_, k)| k.is_none()).map(|(p, _)| p).collect();
        let stored = self.put_in_transaction(&rest, now)?;
        let inserted = stored.iter().filter(|o| matches!(o, Outcome::Inserted(_))).count() as u64;
        self.counts().articles += inserted;
        let mut stored = stored.into_iter();
        Ok(known.into_iter().map(|k| k.or_else(|| stored.next())).collect::<Option<Vec<_>>>().unwrap_or_default())
    }

    /// What `put_one` would answer without writing, when that is certain from a read: retention
    /// removed the item, it joined another source's story, or its stored version is the same.
    fn known(&self, put: &Put) -> Result<Option<Outcome>, Error> {
        #[derive(Deserialize)]
        struct Stored {
            digest: String,
            published: chrono::DateTime<chrono::FixedOffset>,
        }
        let key = put.article.key.as_bytes();
        let Some(bytes) = self.articles.get(key).map_err(|e| self.err(e))? else {
            // New to this source's index: unless retention removed it or it joined another
            // source's story (the transaction checks both), it is stored.
            if self.pruned.is_empty() && self.aliases.is_empty() {
                return Ok(None);
            }
            if self.pruned.contains_key(key).map_err(|e| self.err(e))? {
                return Ok(Some(Outcome::Pruned(put.article.key.clone())));
            }
            if let Some(canonical) = self.aliases.get(key).map_err(|e| self.err(e))? {
                return Ok(Some(Outcome::Merged(String::from_utf8_lossy(&canonical).into_owned())));
            }
            return Ok(None);
        };
        let old: Stored =
            serde_json::from_slice(&bytes).map_err(|e| self.corrupt(format!("article {}: {e}", put.article.key)))?;
        let same = old.digest == put.article.digest && (!put.explicit_date || old.published == put.article.published);
        Ok(same.then(|| Outcome::Unchanged(put.article.key.clone())))
    }

    fn put_in_transaction(&self, puts: &[&Put], now: DateTime<Utc>) -> Result<Vec<Outcome>, Error> {
        let trees = (
            &self.articles,
            &self.by_date,
            &self.by_hash,
            &self.history,
            &self.links,
            &self.stories,
            &self.aliases,
            &self.pruned,
            &self.by_source,
        );
        let result =
            trees.transaction(|(articles, by_date, by_hash, history, links, stories, aliases, pruned, by_source)| {
                let tx = Tx { articles, by_date, by_hash, history, links, stories, aliases, pruned, by_source };
                // A transaction may run more than once: every run starts from the callers' articles.
                puts.iter().map(|p| put_one(&tx, p, now)).collect::<Result<Vec<_>, _>>()
            });
        result.map_err(|e| match e {
            TransactionError::Abort(e) => self.corrupt(e),
            TransactionError::Storage(e) => self.err(e),
        })
    }

    pub fn get(&self, key: &str) -> Result<Option<Article>, Error> {
        if crate::failpoint::active("store-read-panic") {
            panic!("a test's failpoint panics as sled does on a damaged page");
        }
        match self.articles.get(key.as_bytes()).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| self.corrupt(format!("article {key}: {e}"))),
        }
    }

    /// Earlier versions of an article, oldest first.
    pub fn history(&self, key: &str) -> Result<Vec<Article>, Error> {
        self.history
            .scan_prefix(keys::history_prefix(key))
            .values()
            .map(|v| {
                let v = v.map_err(|e| self.err(e))?;
                serde_json::from_slice(&v).map_err(|e| self.corrupt(format!("history of {key}: {e}")))
            })
            .collect()
    }

    /// Articles newest first (by publication time, key breaking ties), visiting the time index and
    /// loading only what `keep` accepts, up to `limit`. Memory is bounded by `limit`, not the store.
    pub fn newest(&self, limit: usize, mut keep: impl FnMut(&Article) -> bool) -> Result<Vec<Article>, Error> {
        let mut out = Vec::with_capacity(limit.min(1024));
        if limit == 0 {
            return Ok(out);
        }
        self.walk_newest(|a| {
            if keep(&a) {
                out.push(a);
            }
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Keys of the newest `limit` articles that `keep` accepts (articles are not held).
    pub fn newest_keys(&self, limit: usize, mut keep: impl FnMut(&Article) -> bool) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.walk_newest(|a| {
            if keep(&a) {
                out.push(a.key);
            }
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Articles newest first, until `more` says stop.
    fn walk_newest(&self, mut more: impl FnMut(Article) -> bool) -> Result<(), Error> {
        // A test's failpoint makes the store lose every other article from its time index.
        let lossy = crate::failpoint::active("store-fewer-articles");
        for (i, item) in self.by_date.iter().keys().rev().enumerate() {
            if lossy && i % 2 == 1 {
                continue;
            }
            let k = item.map_err(|e| self.err(e))?;
            let key = keys::key_of_by_date(&k).ok_or_else(|| self.corrupt("a by_date key is not UTF-8"))?;
            let Some(article) = self.get(key)? else {
                return Err(self.corrupt(format!("by_date names {key}, which is not stored")));
            };
            if !more(article) {
                break;
            }
        }
        Ok(())
    }

    /// How many articles of a source are stored.
    pub fn source_len(&self, source: &str) -> usize {
        self.by_source.scan_prefix(keys::by_source_prefix(source)).count()
    }

    /// Newest articles of one source (by its own index: cheap even when the source is rare).
    pub fn newest_of(&self, source: &str, limit: usize) -> Result<Vec<Article>, Error> {
        let mut out = Vec::new();
        for item in self.by_source.scan_prefix(keys::by_source_prefix(source)).keys().rev() {
            if out.len() >= limit {
                break;
            }
            let k = item.map_err(|e| self.err(e))?;
            let key = keys::key_of_by_source(&k).ok_or_else(|| self.corrupt("a by_source key is not UTF-8"))?;
            match self.get(key)? {
                Some(a) => out.push(a),
                None => return Err(self.corrupt(format!("by_source names {key}, which is not stored"))),
            }
        }
        Ok(out)
    }
}
