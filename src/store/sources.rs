//! What the store keeps about each external source between polls.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Error, Store};

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

impl Store {
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
}
