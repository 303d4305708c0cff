//! The store: every article, its history and its indexes in one sled database. The only code that
//! names trees or builds keys. Writes of one article and its index entries are one transaction;
//! durability comes from `flush`, which callers run once per batch before acknowledging input.

mod keys;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Timelike, Utc};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};

use serde::{Deserialize, Serialize};

use crate::article::{self, Article, Provenance};

const SCHEMA_VERSION: u32 = 1;
/// sled's default cache is 1 GiB; a feed store needs far less.
const CACHE_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the store {path} is in use by another process (a running siar?): {}", describe(.source))]
    Locked { path: PathBuf, source: sled::Error },
    #[error("cannot open the store {path}: {}", describe(.source))]
    Open { path: PathBuf, source: sled::Error },
    #[error(
        "the store {path} has schema version {found}, this siar knows {SCHEMA_VERSION}; use a matching siar or rebuild the store"
    )]
    Schema { path: PathBuf, found: u32 },
    #[error("store {path}: {}", describe(.source))]
    Sled { path: PathBuf, source: sled::Error },
    #[error("store {path}: a stored record is unreadable: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

/// sled's I/O errors in words (its own Display shows the Debug form), with what to do on a full disk.
fn describe(e: &sled::Error) -> String {
    match e {
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
            "no space left on device: free space on that disk; siar exits 75 (temporary) and systemd restarts it"
                .to_string()
        }
        sled::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

impl Error {
    /// sysexits code for the daemon: 65 corrupt data, 75 temporary (locked, I/O).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Schema { .. } | Error::Corrupt { .. } => 65,
            Error::Open { source: sled::Error::Corruption { .. }, .. } => 65,
            _ => 75,
        }
    }
}

/// What `put` did with an incoming article.
#[derive(Debug, Clone)]
pub enum Outcome {
    Inserted(Article),
    Updated(Article),
    /// Same article key, nothing a reader sees changed.
    Unchanged(String),
    /// The same file bytes were stored before (under any name).
    Duplicate(String),
    /// The same story, stored before from another source: recorded as its provenance (the key
    /// of the article it joined).
    Merged(String),
    /// Retention removed this item before: it is not brought back.
    Pruned(String),
}

/// One article for `put_many`, with what the merge needs to know.
#[derive(Debug, Clone)]
pub struct Put {
    pub article: Article,
    /// The article named its own date, so an update may move it.
    pub explicit_date: bool,
    /// blake3 of the source bytes of a drop file: the same bytes again are a duplicate.
    pub file_hash: Option<[u8; 32]>,
    /// Cross-source dedupe keys: the normalized link (when the link is the item's own) and the
    /// story hash (title + substantial body).
    pub link_key: Option<String>,
    pub story_key: Option<[u8; 32]>,
}

impl Put {
    /// A put with the dedupe keys computed from the article; `own_link` is false when the link
    /// is a stand-in (an item that named none).
    pub fn new(article: Article, explicit_date: bool, file_hash: Option<[u8; 32]>, own_link: bool) -> Put {
        let link_key = if own_link { article::link_key(&article.link) } else { None };
        let story_key = (article.source != article::DROP_SOURCE).then(|| article::story_key(&article)).flatten();
        Put { article, explicit_date, file_hash, link_key, story_key }
    }
}

/// What the store keeps about an external source between polls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceState {
    /// The URL in the config when this state was written: a changed config URL starts afresh.
    pub configured_url: String,
    /// The URL polled: the configured one, or where a permanent redirect pointed.
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub last_poll: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub next_poll: Option<DateTime<Utc>>,
    /// Consecutive failures (0 after a success).
    pub failures: u32,
    /// "new", "ok", "not modified", "error", "disabled".
    pub status: String,
    /// The last outcome in words (the error, or what changed).
    pub detail: String,
    /// Why the source is disabled (410 Gone), if it is.
    pub disabled: Option<String>,
    pub title: Option<String>,
    pub feed_id: Option<String>,
    pub site: Option<String>,
    pub polls: u64,
    pub not_modified: u64,
    pub errors: u64,
}

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
fn id_key(id: &str) -> String {
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
    let mut incoming = put.article.clone();
    if let Some(hash) = put.file_hash {
        if let Some(key) = tx.by_hash.get(hash)? {
            return Ok(Outcome::Duplicate(String::from_utf8_lossy(&key).into_owned()));
        }
        tx.by_hash.insert(&hash[..], incoming.key.as_bytes())?;
    }
    let key = incoming.key.clone();
    // Retention and cross-source merges concern external sources only.
    let external = incoming.source != crate::article::DROP_SOURCE;
    if external && tx.pruned.get(key.as_bytes())?.is_some() {
        return Ok(Outcome::Pruned(key));
    }
    if external && let Some(canonical) = tx.aliases.get(key.as_bytes())? {
        return Ok(Outcome::Merged(String::from_utf8_lossy(&canonical).into_owned()));
    }
    let inserted = match load(tx.articles, key.as_bytes())? {
        None => {
            if external && let Some(mut first) = same_story(tx, put)? {
                // The first-seen version stays the published one; this source is recorded.
                let via = incoming.via.as_ref();
                first.provenance.push(Provenance {
                    source: incoming.source.clone(),
                    url: via.map(|v| v.url.clone()).unwrap_or_default(),
                    origin_id: incoming.origin_id.clone().unwrap_or_default(),
                    link: incoming.link.clone(),
                    seen: now,
                });
                save(tx, &first)?;
                tx.aliases.insert(key.as_bytes(), first.key.as_bytes())?;
                return Ok(Outcome::Merged(first.key));
            }
            incoming.version = 1;
            true
        }
        Some(old) if old.digest == incoming.digest && (!put.explicit_date || old.published == incoming.published) => {
            return Ok(Outcome::Unchanged(old.key));
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
            let old_bytes = serde_json::to_vec(&old).map_err(ConflictableTransactionError::Abort)?;
            tx.history.insert(keys::history(&old.key, old.version), old_bytes)?;
            tx.by_date.remove(keys::by_date(&old.published, &old.key))?;
            tx.by_source.remove(keys::by_source(&old.source, &old.published, &old.key))?;
            false
        }
    };
    save(tx, &incoming)?;
    tx.by_date.insert(keys::by_date(&incoming.published, &key), &[])?;
    tx.by_source.insert(keys::by_source(&incoming.source, &incoming.published, &key), &[])?;
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

#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    created: DateTime<Utc>,
    db: sled::Db,
    articles: Tree,
    by_date: Tree,
    by_hash: Tree,
    history: Tree,
    links: Tree,
    stories: Tree,
    aliases: Tree,
    pruned: Tree,
    by_source: Tree,
    sources: Tree,
    /// RFC 5005 archive pages per feed: `<feed>\0state` -> ArchiveState, `<feed>\0page\0<n BE>`
    /// -> the page's keys, `<feed>\0key\0<key>` -> the page holding the article.
    archives: Tree,
    /// `schema_version`, `created`, `indexes`, `on_disk` (the public feeds written, per output).
    meta: Tree,
}

/// Where a feed's archive stands: the window last published, the articles waiting for a page
/// (with when they started waiting, ms), how many pages exist.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArchiveState {
    pub window: Vec<String>,
    pub pending: Vec<(String, i64)>,
    pub pages: u32,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, Error> {
        let db = sled::Config::new().path(path).cache_capacity(CACHE_BYTES).flush_every_ms(Some(500)).open().map_err(
            |source| {
                let locked = matches!(&source, sled::Error::Io(e) if e.to_string().contains("lock"));
                if locked {
                    Error::Locked { path: path.to_path_buf(), source }
                } else {
                    Error::Open { path: path.to_path_buf(), source }
                }
            },
        )?;
        let sled_err = |source| Error::Sled { path: path.to_path_buf(), source };
        let tree = |name: &str| db.open_tree(name).map_err(sled_err);
        let meta = tree("meta")?;
        match meta.get("schema_version").map_err(sled_err)? {
            None => {
                meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes()).map_err(sled_err)?;
            }
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref()).map(u32::from_be_bytes).unwrap_or(0);
                if found != SCHEMA_VERSION {
                    return Err(Error::Schema { path: path.to_path_buf(), found });
                }
            }
        }
        let created = match meta.get("created").map_err(sled_err)? {
            Some(v) => String::from_utf8_lossy(&v).parse::<DateTime<Utc>>().ok(),
            None => None,
        };
        let created = match created {
            Some(c) => c,
            None => {
                let now = Utc::now().with_nanosecond(0).unwrap_or_else(Utc::now);
                meta.insert("created", now.to_rfc3339().as_bytes()).map_err(sled_err)?;
                now
            }
        };
        let store = Store {
            created,
            articles: tree("articles")?,
            by_date: tree("by_date")?,
            by_hash: tree("by_hash")?,
            history: tree("history")?,
            links: tree("links")?,
            stories: tree("stories")?,
            aliases: tree("aliases")?,
            pruned: tree("pruned")?,
            by_source: tree("by_source")?,
            sources: tree("sources")?,
            archives: tree("archives")?,
            meta: meta.clone(),
            path: path.to_path_buf(),
            db,
        };
        if meta.get("indexes").map_err(sled_err)?.is_none() {
            store.build_indexes()?;
            meta.insert("indexes", &2u32.to_be_bytes()).map_err(sled_err)?;
        }
        Ok(store)
    }

    /// Fills the per-source and dedupe indexes for a store written before they existed.
    fn build_indexes(&self) -> Result<(), Error> {
        for item in self.articles.iter().values() {
            let v = item.map_err(|e| self.err(e))?;
            let a: Article = serde_json::from_slice(&v).map_err(|e| self.corrupt(e))?;
            let k = keys::by_source(&a.source, &a.published, &a.key);
            self.by_source.insert(k, &[]).map_err(|e| self.err(e))?;
            for l in article::link_key(&a.link).into_iter().chain([id_key(&a.id)]) {
                self.links.insert(l.as_bytes(), a.key.as_bytes()).map_err(|e| self.err(e))?;
            }
            if let Some(h) = article::story_key(&a) {
                self.stories.insert(&h[..], a.key.as_bytes()).map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }

    /// When this store was created: the `updated` time of a feed that has no articles yet
    /// (stable across publishes, unlike the clock).
    pub fn created(&self) -> DateTime<Utc> {
        self.created
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: sled::Error) -> Error {
        Error::Sled { path: self.path.clone(), source }
    }

    fn corrupt(&self, detail: impl std::fmt::Display) -> Error {
        Error::Corrupt { path: self.path.clone(), detail: detail.to_string() }
    }

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
        let mut stored = self.put_in_transaction(&rest, now)?.into_iter();
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

    /// Makes everything written so far durable (fsync). Blocks: call it off the async runtime.
    pub fn flush(&self) -> Result<(), Error> {
        self.db.flush().map(|_| ()).map_err(|e| self.err(e))
    }

    pub fn get(&self, key: &str) -> Result<Option<Article>, Error> {
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
        for item in self.by_date.iter().keys().rev() {
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

    pub fn len(&self) -> usize {
        self.articles.len()
    }

    /// A cheap read that fails when the store does (for readiness checks).
    pub fn ping(&self) -> Result<(), Error> {
        self.articles.first().map(|_| ()).map_err(|e| self.err(e))
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

    /// Retention: removes a source's articles beyond the newest `max_items` and those published
    /// before `older_than`. Their keys are remembered, so a later poll does not bring them back.
    /// Returns the removed keys.
    pub fn prune(
        &self,
        source: &str,
        max_items: Option<usize>,
        older_than: Option<DateTime<Utc>>,
    ) -> Result<Vec<String>, Error> {
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
            let trees = (&self.articles, &self.by_date, &self.by_source, &self.pruned, &self.links, &self.stories);
            let result = trees.transaction(|(articles, by_date, by_source, pruned, links, stories)| {
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
            for h in self.history.scan_prefix(keys::history_prefix(&a.key)).keys() {
                let h = h.map_err(|e| self.err(e))?;
                self.history.remove(h).map_err(|e| self.err(e))?;
            }
            removed.push(a.key);
        }
        Ok(removed)
    }

    pub fn source_state(&self, name: &str) -> Result<Option<SourceState>, Error> {
        match self.sources.get(name.as_bytes()).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| self.corrupt(format!("source {name}: {e}"))),
        }
    }

    pub fn put_source_state(&self, name: &str, state: &SourceState) -> Result<(), Error> {
        let bytes = serde_json::to_vec(state).map_err(|e| self.corrupt(e))?;
        self.sources.insert(name.as_bytes(), bytes).map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.articles.is_empty()
    }

    pub fn archive_state(&self, feed: &str) -> Result<ArchiveState, Error> {
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

    /// Records page `n` of a feed's archive and marks its articles as archived.
    pub fn put_archive_page(&self, feed: &str, n: u32, page: &[String]) -> Result<(), Error> {
        let bytes = serde_json::to_vec(page).map_err(|e| self.corrupt(e))?;
        self.archives.insert(keys::archive_page(feed, n), bytes).map_err(|e| self.err(e))?;
        for k in page {
            self.archives.insert(keys::archived(feed, k), &n.to_be_bytes()).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    pub fn archive_page(&self, feed: &str, n: u32) -> Result<Option<Vec<String>>, Error> {
        match self.archives.get(keys::archive_page(feed, n)).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(b) => {
                serde_json::from_slice(&b).map(Some).map_err(|e| self.corrupt(format!("archive of {feed}: {e}")))
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::Article;

    fn article(slug: &str, title: &str, published: &str) -> Article {
        Article::sample(slug, title, published, "A")
    }

    /// Opens a store just closed in this process: sled's background flusher may hold the lock a
    /// moment after the last handle is dropped.
    fn reopen(path: &Path) -> Result<Store, Error> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Store::open(path) {
                Err(Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other,
            }
        }
    }

    #[test]
    fn insert_update_duplicate_and_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let now = Utc::now();
        let a = article("a", "First", "2026-11-01T00:00:00Z");
        assert!(matches!(store.put(a.clone(), false, &[1; 32], now).expect("put"), Outcome::Inserted(_)));
        assert!(
            matches!(store.put(a.clone(), false, &[1; 32], now).expect("put"), Outcome::Duplicate(k) if k == "drop/a")
        );
        assert!(matches!(store.put(a.clone(), false, &[2; 32], now).expect("put"), Outcome::Unchanged(_)));
        let mut edited = article("a", "First, corrected", "2026-11-05T00:00:00Z");
        edited.id = "tag:would-be-new".into();
        let Outcome::Updated(u) = store.put(edited, false, &[3; 32], now).expect("put") else { panic!("not updated") };
        assert_eq!(u.id, a.id, "the id never changes");
        assert_eq!(u.version, 2);
        assert_eq!(u.published, a.published, "no explicit date: keeps the first one");
        assert!(u.updated > a.updated);
        assert_eq!(store.history("drop/a").expect("history"), vec![a]);
        // Many edits within one second: each later than the last, by milliseconds, not seconds.
        let mut last = u.updated;
        for i in 0..5u8 {
            let e = article("a", &format!("edit {i}"), "2026-11-05T00:00:00Z");
            let Outcome::Updated(v) = store.put(e, false, &[10 + i; 32], now).expect("put") else {
                panic!("not updated")
            };
            assert!(
                v.updated > last && v.updated - last <= chrono::Duration::milliseconds(1),
                "{} after {last}",
                v.updated
            );
            last = v.updated;
        }
        assert_eq!(store.newest(10, |_| true).expect("newest").len(), 1);
    }

    #[test]
    fn newest_first_with_filter_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            for (i, day) in ["03", "01", "02"].iter().enumerate() {
                let a = article(&format!("s{day}"), "t", &format!("2026-11-{day}T00:00:00Z"));
                store.put(a, false, &[i as u8; 32], Utc::now()).expect("put");
            }
            store.flush().expect("flush");
        }
        let store = reopen(dir.path()).expect("reopen");
        let keys: Vec<String> = store.newest(2, |_| true).expect("newest").into_iter().map(|a| a.slug).collect();
        assert_eq!(keys, ["s03", "s02"]);
        let keys: Vec<String> =
            store.newest(5, |a| a.slug != "s02").expect("newest").into_iter().map(|a| a.slug).collect();
        assert_eq!(keys, ["s03", "s01"]);
    }

    #[test]
    fn a_store_of_another_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = sled::open(dir.path()).expect("sled");
            db.open_tree("meta").expect("tree").insert("schema_version", &99u32.to_be_bytes()).expect("insert");
            db.flush().expect("flush");
        }
        let err = reopen(dir.path()).err().expect("refused");
        assert!(matches!(err, Error::Schema { found: 99, .. }), "{err}");
        assert_eq!(err.exit_code(), 65);
    }

    #[test]
    fn a_second_open_is_refused_as_locked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = Store::open(dir.path()).expect("open");
        // sled locks per process with flock; a second process is what matters, exercised in the
        // integration tests. In one process sled refuses too.
        match Store::open(dir.path()) {
            Err(Error::Locked { .. }) | Err(Error::Open { .. }) => {}
            Ok(_) => panic!("second open succeeded"),
            Err(e) => panic!("unexpected: {e}"),
        }
    }
}
