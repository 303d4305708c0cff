//! siar: publishes and aggregates news feeds. Drop folder -> sled -> RSS 2.0, Atom 1.0, JSON Feed.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod article;
pub mod config;
pub mod control;
pub mod daemon;
pub mod fetch;
pub mod html;
pub mod ingest;
pub mod opml;
pub mod publish;
pub mod schedule;
pub mod store;
