//! siar: publishes and aggregates news feeds. Drop folder -> sled -> RSS 2.0, Atom 1.0, JSON Feed.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod access;
pub mod article;
pub mod config;
pub mod control;
pub mod daemon;
pub mod exit;
pub mod failpoint;
pub mod fetch;
pub mod html;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod opml;
pub mod publish;
pub mod recover;
pub mod schedule;
pub mod serve;
pub mod store;
pub mod websub;
