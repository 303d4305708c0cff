//! `siar verify`: reads every record of the store and checks that the indexes agree with the
//! articles. Reads only; the caller decides which copy of the files it runs on.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::articles::id_key;
use super::{ArchiveState, SourceState, Store, keys};
use crate::article::{self, Article};

/// What `verify` found: the counts read, and each problem in words.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub articles: u64,
    pub versions: u64,
    pub removed: u64,
    pub sources: u64,
    pub archive_pages: u64,
    /// What the ledger says the store held (stored + removed), if it has a ledger.
    pub held: Option<u64>,
    pub problems: Vec<String>,
}

/// Problems past this many are counted, not listed.
const MAX_LISTED: usize = 1000;

impl Report {
    fn problem(&mut self, p: String) {
        if self.problems.len() < MAX_LISTED {
            self.problems.push(p);
        } else if self.problems.len() == MAX_LISTED {
            self.problems.push("... and more problems (only the first 1000 are listed)".into());
        }
    }

    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn text(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

impl Store {
    /// Every record read and checked. A read error is a problem, not the end of the check.
    pub fn verify(&self, held: Option<u64>) -> Report {
        let mut r = Report { held, ..Report::default() };
        let mut stored: BTreeMap<String, (String, chrono::DateTime<chrono::FixedOffset>, u32)> = BTreeMap::new();
        let mut by_date = BTreeSet::new();
        let mut by_source = BTreeSet::new();
        for item in self.articles.iter() {
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => {
                    r.problem(format!("articles: a record cannot be read: {}", super::describe(&e)));
                    break;
                }
            };
            let key = text(&k);
            let a: Article = match serde_json::from_slice(&v) {
                Ok(a) => a,
                Err(e) => {
                    r.problem(format!("article {key} does not decode: {e}"));
                    continue;
                }
            };
            r.articles += 1;
            if a.key != key {
                r.problem(format!("article {key} is stored under another key than its own ({})", a.key));
            }
            by_date.insert(keys::by_date(&a.published, &a.key));
            by_source.insert(keys::by_source(&a.source, &a.published, &a.key));
            self.check_dedupe_keys(&a, &mut r);
            self.check_history(&a, &mut r);
            stored.insert(key, (a.source.clone(), a.published, a.version));
        }
        self.check_index("by_date", &self.by_date, &by_date, &mut r);
        self.check_index("by_source", &self.by_source, &by_source, &mut r);
        for (name, tree) in [("links", &self.links), ("stories", &self.stories), ("aliases", &self.aliases)] {
            for item in tree.iter() {
                match item {
                    // Retention keeps the dedupe keys of what it removed: a re-poll must not revive it.
                    Ok((k, v)) if !stored.contains_key(&text(&v)) && !self.pruned.contains_key(&v).unwrap_or(false) => {
                        r.problem(format!("{name}: {:?} names article {}, which is not stored", text(&k), text(&v)))
                    }
                    Ok(_) => {}
                    Err(e) => r.problem(format!("{name}: a record cannot be read: {}", super::describe(&e))),
                }
            }
        }
        for item in self.by_hash.iter() {
            match item {
                Ok((_, v)) if !stored.contains_key(&text(&v)) && !self.pruned.contains_key(&v).unwrap_or(false) => {
                    r.problem(format!("by_hash: a file hash names article {}, which is not stored", text(&v)))
                }
                Ok(_) => {}
                Err(e) => r.problem(format!("by_hash: a record cannot be read: {}", super::describe(&e))),
            }
        }
        self.check_sources(&mut r);
        self.check_archives(&stored, &mut r);
        match self.removed_recorded() {
            Ok(removed) => {
                r.removed = removed;
                if let Some(h) = held
                    && r.articles + removed < h
                {
                    r.problem(format!(
                        "the store holds {} articles and {removed} were removed by retention, but its ledger says \
                         it held {h}: {} are missing",
                        r.articles,
                        h - r.articles - removed
                    ));
                }
            }
            Err(e) => r.problem(e.to_string()),
        }
        r
    }

    fn check_dedupe_keys(&self, a: &Article, r: &mut Report) {
        let external = a.source != article::DROP_SOURCE;
        let id = id_key(&a.id);
        match self.links.get(id.as_bytes()) {
            Ok(Some(v)) if v == a.key.as_bytes() || external => {}
            Ok(Some(v)) => r.problem(format!("links: the id {} of article {} names {}", a.id, a.key, text(&v))),
            Ok(None) => r.problem(format!("links: the id {} of article {} is not indexed", a.id, a.key)),
            Err(e) => r.problem(format!("links: {}", super::describe(&e))),
        }
    }

    /// Versions 1 to `version - 1` in history, each decoding as this article.
    fn check_history(&self, a: &Article, r: &mut Report) {
        let mut want = 1;
        for item in self.history.scan_prefix(keys::history_prefix(&a.key)) {
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => return r.problem(format!("history of {}: {}", a.key, super::describe(&e))),
            };
            let n =
                k.get(k.len().saturating_sub(4)..).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_be_bytes);
            match serde_json::from_slice::<Article>(&v) {
                Ok(old) if old.key == a.key && Some(old.version) == n && old.version == want => {}
                Ok(old) => r.problem(format!(
                    "history of {}: found version {} where version {want} belongs",
                    a.key, old.version
                )),
                Err(e) => r.problem(format!("history of {}: version {want} does not decode: {e}", a.key)),
            }
            r.versions += 1;
            want += 1;
        }
        if want != a.version {
            r.problem(format!(
                "history of {}: holds versions 1 to {} but the article is version {}",
                a.key,
                want - 1,
                a.version
            ));
        }
    }

    fn check_index(&self, name: &str, tree: &sled::Tree, want: &BTreeSet<Vec<u8>>, r: &mut Report) {
        let mut seen = BTreeSet::new();
        for k in tree.iter().keys() {
            match k {
                Ok(k) => {
                    if !want.contains(k.as_ref()) {
                        let key = if name == "by_date" { keys::key_of_by_date(&k) } else { keys::key_of_by_source(&k) };
                        r.problem(format!(
                            "{name}: an entry names article {}, which is not stored with that date and source",
                            key.unwrap_or("(not UTF-8)")
                        ));
                    }
                    seen.insert(k.to_vec());
                }
                Err(e) => return r.problem(format!("{name}: {}", super::describe(&e))),
            }
        }
        for k in want.difference(&seen) {
            let key = if name == "by_date" { keys::key_of_by_date(k) } else { keys::key_of_by_source(k) };
            r.problem(format!("{name}: article {} has no entry", key.unwrap_or("?")));
        }
    }

    fn check_sources(&self, r: &mut Report) {
        for item in self.sources.iter() {
            match item {
                Ok((k, v)) => match serde_json::from_slice::<SourceState>(&v) {
                    Ok(_) => r.sources += 1,
                    Err(e) => r.problem(format!("source {}: its state does not decode: {e}", text(&k))),
                },
                Err(e) => r.problem(format!("sources: {}", super::describe(&e))),
            }
        }
    }

    /// Pages name stored articles (or ones retention removed since), states and marks agree.
    fn check_archives(
        &self,
        stored: &BTreeMap<String, (String, chrono::DateTime<chrono::FixedOffset>, u32)>,
        r: &mut Report,
    ) {
        let mut pages: BTreeMap<String, u32> = BTreeMap::new();
        let mut states: BTreeMap<String, ArchiveState> = BTreeMap::new();
        for item in self.archives.iter() {
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => return r.problem(format!("archives: {}", super::describe(&e))),
            };
            let Some((feed, kind, rest)) = keys::split_archive(&k) else {
                r.problem(format!("archives: an unknown key {:?}", text(&k)));
                continue;
            };
            match kind {
                "state" => match serde_json::from_slice::<ArchiveState>(&v) {
                    Ok(st) => {
                        states.insert(feed.to_string(), st);
                    }
                    Err(e) => r.problem(format!("archive of {feed}: its state does not decode: {e}")),
                },
                "page" => {
                    let n = <[u8; 4]>::try_from(rest).map(u32::from_be_bytes).unwrap_or(0);
                    r.archive_pages += 1;
                    *pages.entry(feed.to_string()).or_default() = n.max(pages.get(feed).copied().unwrap_or(0));
                    match super::archives::decode_page(&v) {
                        Ok(entries) => {
                            for (key, _) in entries {
                                if !stored.contains_key(&key)
                                    && !self.pruned.contains_key(key.as_bytes()).unwrap_or(false)
                                {
                                    r.problem(format!(
                                        "archive page {n} of {feed} names article {key}, which is not stored"
                                    ));
                                }
                            }
                        }
                        Err(e) => r.problem(format!("archive page {n} of {feed} does not decode: {e}")),
                    }
                }
                "key" => {}
                other => r.problem(format!("archives of {feed}: an unknown record kind {other:?}")),
            }
        }
        for (feed, st) in &states {
            let have = pages.get(feed).copied().unwrap_or(0);
            if have < st.pages {
                r.problem(format!("archive of {feed}: {} pages recorded, page {} is missing", st.pages, have + 1));
            }
        }
    }
}
