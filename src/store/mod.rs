//! The store: every article, its history and its indexes in one sled database. The only code that
//! names trees or builds keys. Writes of one article and its index entries are one transaction;
//! durability comes from `flush`, which callers run once per batch before acknowledging input.

mod keys;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Timelike, Utc};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};

use crate::article::Article;

const SCHEMA_VERSION: u32 = 1;
/// sled's default cache is 1 GiB; a feed store needs far less.
const CACHE_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the store {path} is in use by another process (a running siar?): {source}")]
    Locked { path: PathBuf, source: sled::Error },
    #[error("cannot open the store {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error(
        "the store {path} has schema version {found}, this siar knows {SCHEMA_VERSION}; use a matching siar or rebuild the store"
    )]
    Schema { path: PathBuf, found: u32 },
    #[error("store {path}: {source}")]
    Sled { path: PathBuf, source: sled::Error },
    #[error("store {path}: a stored record is unreadable: {detail}")]
    Corrupt { path: PathBuf, detail: String },
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
}

/// One article for `put_many`, with what the merge needs to know.
#[derive(Debug, Clone)]
pub struct Put {
    pub article: Article,
    /// The article named its own date, so an update may move it.
    pub explicit_date: bool,
    /// blake3 of the source bytes: the same bytes again are a duplicate.
    pub file_hash: [u8; 32],
}

type TxResult<T> = Result<T, ConflictableTransactionError<serde_json::Error>>;

fn put_one(
    articles: &TransactionalTree,
    by_date: &TransactionalTree,
    by_hash: &TransactionalTree,
    history: &TransactionalTree,
    put: &Put,
    now: DateTime<Utc>,
) -> TxResult<Outcome> {
    let mut incoming = put.article.clone();
    if let Some(key) = by_hash.get(put.file_hash)? {
        return Ok(Outcome::Duplicate(String::from_utf8_lossy(&key).into_owned()));
    }
    by_hash.insert(&put.file_hash[..], incoming.key.as_bytes())?;
    let old = match articles.get(incoming.key.as_bytes())? {
        None => None,
        Some(bytes) => Some(serde_json::from_slice::<Article>(&bytes).map_err(ConflictableTransactionError::Abort)?),
    };
    let outcome = match old {
        None => {
            incoming.version = 1;
            Outcome::Inserted(incoming.clone())
        }
        Some(old) if old.digest == incoming.digest && (!put.explicit_date || old.published == incoming.published) => {
            return Ok(Outcome::Unchanged(old.key));
        }
        Some(old) => {
            // Keep the public id and, unless the new version names its own date, the first date.
            incoming.id = old.id.clone();
            incoming.version = old.version + 1;
            if !put.explicit_date {
                incoming.published = old.published;
            }
            // Later than the last version, even for many edits within one second (milliseconds).
            let floor = old.updated + chrono::Duration::milliseconds(1);
            let now_ms = now.with_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(now);
            incoming.updated = now_ms.max(floor);
            let old_bytes = serde_json::to_vec(&old).map_err(ConflictableTransactionError::Abort)?;
            history.insert(keys::history(&old.key, old.version), old_bytes)?;
            by_date.remove(keys::by_date(&old.published, &old.key))?;
            Outcome::Updated(incoming.clone())
        }
    };
    let bytes = serde_json::to_vec(&incoming).map_err(ConflictableTransactionError::Abort)?;
    articles.insert(incoming.key.as_bytes(), bytes)?;
    by_date.insert(keys::by_date(&incoming.published, &incoming.key), &[])?;
    Ok(outcome)
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
        Ok(Store {
            created,
            articles: tree("articles")?,
            by_date: tree("by_date")?,
            by_hash: tree("by_hash")?,
            history: tree("history")?,
            path: path.to_path_buf(),
            db,
        })
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
        let mut out = self.put_many(&[Put { article: incoming, explicit_date, file_hash: *file_hash }], now)?;
        Ok(out.remove(0))
    }

    /// Stores articles in one transaction (all or none): each is a new article, a new version of
    /// an existing one (same id, `updated` advanced, the old version kept in history), or nothing
    /// when its file bytes or its content were stored before. Outcomes are in input order.
    pub fn put_many(&self, puts: &[Put], now: DateTime<Utc>) -> Result<Vec<Outcome>, Error> {
        let trees = (&self.articles, &self.by_date, &self.by_hash, &self.history);
        let result = trees.transaction(|(articles, by_date, by_hash, history)| {
            // A transaction may run more than once: every run starts from the callers' articles.
            puts.iter().map(|p| put_one(articles, by_date, by_hash, history, p, now)).collect::<Result<Vec<_>, _>>()
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
        for item in self.by_date.iter().keys().rev() {
            if out.len() >= limit {
                break;
            }
            let k = item.map_err(|e| self.err(e))?;
            let key = keys::key_of_by_date(&k).ok_or_else(|| self.corrupt("a by_date key is not UTF-8"))?;
            let Some(article) = self.get(key)? else {
                return Err(self.corrupt(format!("by_date names {key}, which is not stored")));
            };
            if keep(&article) {
                out.push(article);
            }
        }
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.articles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.articles.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::Article;

    fn article(slug: &str, title: &str, published: &str) -> Article {
        Article::sample(slug, title, published, "A")
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
        let store = Store::open(dir.path()).expect("reopen");
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
        let err = Store::open(dir.path()).err().expect("refused");
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
