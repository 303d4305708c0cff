//! `siar export` / `siar import`: the whole store as JSON Lines. The first line names the format
//! and the siar that wrote it; then one record per line, tree by tree in key order, so the same
//! store always exports the same bytes. Indexes that follow from the articles (`by_date`,
//! `by_source`, the archive marks) are rebuilt on import, not exported.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ArchiveState, Error, SourceState, Store, keys};
use crate::article::Article;

pub const FORMAT: &str = "siar-export";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub siar: String,
    pub schema: u32,
}

/// One line after the header.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum Record {
    Meta {
        created: String,
        removed: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_disk: Option<(PathBuf, Vec<String>)>,
    },
    /// The article as stored now, and its earlier versions, oldest first.
    Article {
        article: Box<Article>,
        history: Vec<Article>,
    },
    FileHash {
        hash: String,
        key: String,
    },
    Link {
        link: String,
        key: String,
    },
    Story {
        hash: String,
        key: String,
    },
    Alias {
        key: String,
        of: String,
    },
    Pruned {
        key: String,
        at: i64,
    },
    Source {
        name: String,
        state: Box<SourceState>,
    },
    Archive {
        feed: String,
        state: ArchiveState,
    },
    Page {
        feed: String,
        n: u32,
        articles: serde_json::Value,
    },
    /// The last line: an export without it was cut short.
    End {
        articles: u64,
    },
}

/// What an import read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Imported {
    pub articles: u64,
    pub versions: u64,
    pub sources: u64,
    pub pages: u64,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Store {
    /// Writes the whole store to `out`, returning how many articles it wrote.
    pub fn export(&self, out: &mut impl Write) -> Result<u64, Error> {
        let io = |e: std::io::Error| Error::Io {
            path: self.path.clone(),
            what: "cannot write the export".into(),
            source: e,
        };
        let mut line = |r: &dyn erased::Line| -> Result<(), Error> { r.write_to(out).map_err(io) };
        let header = Header {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            siar: env!("CARGO_PKG_VERSION").into(),
            schema: super::SCHEMA_VERSION,
        };
        line(&header)?;
        let meta_text = |k: &str| -> Result<Option<sled::IVec>, Error> { self.meta.get(k).map_err(|e| self.err(e)) };
        let created = meta_text("created")?.map(|v| text(&v)).unwrap_or_default();
        let on_disk = match meta_text("on_disk")? {
            Some(b) => Some(serde_json::from_slice(&b).map_err(|e| self.corrupt(e))?),
            None => None,
        };
        line(&Record::Meta { created, removed: self.removed_recorded()?, on_disk })?;
        let mut articles = 0;
        for item in self.articles.iter().values() {
            let v = item.map_err(|e| self.err(e))?;
            let article: Article = serde_json::from_slice(&v).map_err(|e| self.corrupt(e))?;
            let history = self.history(&article.key)?;
            line(&Record::Article { article: Box::new(article), history })?;
            articles += 1;
        }
        let pairs = |tree: &sled::Tree| -> Result<Vec<(sled::IVec, sled::IVec)>, Error> {
            tree.iter().map(|kv| kv.map_err(|e| self.err(e))).collect()
        };
        for (k, v) in pairs(&self.by_hash)? {
            line(&Record::FileHash { hash: hex(&k), key: text(&v) })?;
        }
        for (k, v) in pairs(&self.links)? {
            line(&Record::Link { link: text(&k), key: text(&v) })?;
        }
        for (k, v) in pairs(&self.stories)? {
            line(&Record::Story { hash: hex(&k), key: text(&v) })?;
        }
        for (k, v) in pairs(&self.aliases)? {
            line(&Record::Alias { key: text(&k), of: text(&v) })?;
        }
        for (k, v) in pairs(&self.pruned)? {
            let at = <[u8; 8]>::try_from(v.as_ref()).map(i64::from_be_bytes).unwrap_or(0);
            line(&Record::Pruned { key: text(&k), at })?;
        }
        for (k, v) in pairs(&self.sources)? {
            let state: SourceState = serde_json::from_slice(&v).map_err(|e| self.corrupt(e))?;
            line(&Record::Source { name: text(&k), state: Box::new(state) })?;
        }
        for (k, v) in pairs(&self.archives)? {
            let Some((feed, kind, rest)) = keys::split_archive(&k) else { continue };
            match kind {
                "state" => {
                    let state = serde_json::from_slice(&v).map_err(|e| self.corrupt(e))?;
                    line(&Record::Archive { feed: feed.into(), state })?;
                }
                "page" => {
                    let n =
                        <[u8; 4]>::try_from(rest).map(u32::from_be_bytes).map_err(|_| self.corrupt("a page key"))?;
                    let articles = serde_json::from_slice(&v).map_err(|e| self.corrupt(e))?;
                    line(&Record::Page { feed: feed.into(), n, articles })?;
                }
                _ => {}
            }
        }
        line(&Record::End { articles })?;
        out.flush().map_err(io)?;
        Ok(articles)
    }

    /// Reads an export into this store, which must be empty (the caller checks). `name` is the
    /// file's name for messages.
    pub fn import(&self, input: impl BufRead, name: &str) -> Result<Imported, Error> {
        let bad = |line: usize, what: String| Error::Import { file: name.to_string(), line, what };
        let mut lines = input.lines();
        let first = match lines.next() {
            Some(l) => l.map_err(|e| bad(1, e.to_string()))?,
            None => return Err(bad(1, "empty: not a siar export".into())),
        };
        let header: Header =
            serde_json::from_str(&first).map_err(|e| bad(1, format!("not a siar export header: {e}")))?;
        if header.format != FORMAT || header.version != FORMAT_VERSION {
            return Err(bad(
                1,
                format!(
                    "format {} version {}, this siar reads {FORMAT} version {FORMAT_VERSION}",
                    header.format, header.version
                ),
            ));
        }
        let mut got = Imported::default();
        let mut removed = 0;
        let mut ended = false;
        for (i, l) in lines.enumerate() {
            let n = i + 2;
            let l = l.map_err(|e| bad(n, e.to_string()))?;
            if ended {
                return Err(bad(n, "a record after the end record".into()));
            }
            let record: Record = serde_json::from_str(&l).map_err(|e| bad(n, e.to_string()))?;
            let e = |e: sled::Error| self.err(e);
            let json = |v: &dyn erased::Json| v.bytes().map_err(|e| bad(n, e.to_string()));
            match record {
                Record::Meta { created, removed: r, on_disk } => {
                    self.meta.insert("created", created.as_bytes()).map_err(e)?;
                    self.meta.insert("removed", &r.to_be_bytes()).map_err(e)?;
                    removed = r;
                    if let Some(d) = on_disk {
                        self.meta.insert("on_disk", json(&d)?).map_err(e)?;
                    }
                }
                Record::Article { article, history } => {
                    for old in &history {
                        self.history.insert(keys::history(&old.key, old.version), json(old)?).map_err(e)?;
                        got.versions += 1;
                    }
                    let a = *article;
                    self.articles.insert(a.key.as_bytes(), json(&a)?).map_err(e)?;
                    self.by_date.insert(keys::by_date(&a.published, &a.key), &[]).map_err(e)?;
                    self.by_source.insert(keys::by_source(&a.source, &a.published, &a.key), &[]).map_err(e)?;
                    got.articles += 1;
                }
                Record::FileHash { hash, key } => {
                    let h = unhex(&hash).ok_or_else(|| bad(n, "a file hash is not hex".into()))?;
                    self.by_hash.insert(h, key.as_bytes()).map_err(e)?;
                }
                Record::Link { link, key } => {
                    self.links.insert(link.as_bytes(), key.as_bytes()).map_err(e)?;
                }
                Record::Story { hash, key } => {
                    let h = unhex(&hash).ok_or_else(|| bad(n, "a story hash is not hex".into()))?;
                    self.stories.insert(h, key.as_bytes()).map_err(e)?;
                }
                Record::Alias { key, of } => {
                    self.aliases.insert(key.as_bytes(), of.as_bytes()).map_err(e)?;
                }
                Record::Pruned { key, at } => {
                    self.pruned.insert(key.as_bytes(), &at.to_be_bytes()).map_err(e)?;
                }
                Record::Source { name, state } => {
                    self.sources.insert(name.as_bytes(), json(&*state)?).map_err(e)?;
                    got.sources += 1;
                }
                Record::Archive { feed, state } => self.put_archive_state(&feed, &state)?,
                Record::Page { feed, n: page, articles } => {
                    self.archives.insert(keys::archive_page(&feed, page), json(&articles)?).map_err(e)?;
                    let entries = super::archives::decode_page(&json(&articles)?).map_err(|e| bad(n, e.to_string()))?;
                    for (k, _) in entries {
                        self.archives.insert(keys::archived(&feed, &k), &page.to_be_bytes()).map_err(e)?;
                    }
                    got.pages += 1;
                }
                Record::End { articles } if articles == got.articles => ended = true,
                Record::End { articles } => {
                    return Err(bad(
                        n,
                        format!("the end record counts {articles} articles, {} were read", got.articles),
                    ));
                }
            }
        }
        if !ended {
            return Err(bad(0, "cut short: no end record (export it again)".into()));
        }
        {
            let mut c = self.counts();
            c.articles += got.articles;
            c.removed = removed;
        }
        self.flush()?;
        Ok(got)
    }
}

/// Serializing through a trait object (one `line` closure for every record type).
mod erased {
    pub trait Line {
        fn write_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()>;
    }
    impl<T: serde::Serialize> Line for T {
        fn write_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
            serde_json::to_writer(&mut *out, self).map_err(std::io::Error::other)?;
            out.write_all(b"\n")
        }
    }
    pub trait Json {
        fn bytes(&self) -> serde_json::Result<Vec<u8>>;
    }
    impl<T: serde::Serialize> Json for T {
        fn bytes(&self) -> serde_json::Result<Vec<u8>> {
            serde_json::to_vec(self)
        }
    }
}
