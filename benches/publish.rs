//! Publishing speed and memory against store size: a 50-item feed in RSS, Atom and JSON Feed
//! (render + validation gate + the unchanged-bytes check) from stores of 1,000 to 100,000 articles.
//! `cargo bench --bench publish`; results are recorded in docs/benchmarks.md.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use siar::config::Config;
use siar::store::Store;

const CONFIG: &str = r#"
[site]
title = "Suara Publik"
link = "https://news.example.org/"
language = "id"
timezone = "Asia/Jakarta"
[ingest]
article_link = "{site}berita/{slug}"
[[feed]]
name = "all"
limit = 50
"#;

/// A sample-shaped article: dateline, eight paragraphs, credits (~2.5 KB).
fn article_text(i: usize) -> String {
    let mut t = format!(
        "SURABAYA (Suarapubliknews) – Pemerintah kota mengumumkan program nomor {i} untuk warga. Program ini diharapkan mempercepat pelayanan publik di seluruh kecamatan.\n"
    );
    for p in 0..7 {
        t += &format!(
            "Paragraf {p} dari berita {i} menjelaskan “rincian” kebijakan, anggaran, jadwal pelaksanaan dan tanggapan warga yang menyambut baik langkah tersebut & berharap hasilnya segera terasa.\n"
        );
    }
    t += "Hal tersebut disampaikan dalam jumpa pers di balai kota. (q cox, tama dinie)";
    t
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn fill(store: &Store, cfg: &Config, from: usize, to: usize) {
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    for i in from..to {
        let mtime = base + chrono::Duration::seconds(i as i64 * 37);
        let inc = siar::ingest::build(cfg, &format!("berita-{i}.txt"), article_text(i).as_bytes(), mtime, Utc::now())
            .expect("article");
        store.put(inc.article, inc.explicit_date, &inc.file_hash, Utc::now()).expect("put");
        if i % 1000 == 999 {
            store.flush().expect("flush");
        }
    }
    store.flush().expect("flush");
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = Config::parse(CONFIG, Path::new("bench.toml"), dir.path()).expect("config");
    std::fs::create_dir_all(&cfg.paths.output).expect("output dir");
    let store = Store::open(&cfg.paths.state).expect("store");
    let feed = &cfg.feeds[0];
    println!(
        "store size | ms per feed (3 formats, render+validate) | ms per publish_all (+ read from store, write check) | peak RSS MiB"
    );
    let mut filled = 0;
    for size in [1_000, 10_000, 100_000] {
        fill(&store, &cfg, filled, size);
        filled = size;
        let articles = store.newest(feed.limit, |_| true).expect("newest");
        assert_eq!(articles.len(), 50);
        let iterations = 200;
        let started = Instant::now();
        let mut bytes = 0;
        for _ in 0..iterations {
            bytes = siar::publish::render(&cfg, feed, &articles, store.created())
                .expect("render")
                .iter()
                .map(|(_, b)| b.len())
                .sum();
        }
        let render = started.elapsed() / iterations;
        let mut publisher = siar::publish::Publisher::default();
        publisher.publish_all(&cfg, &store).expect("publish");
        let started = Instant::now();
        for _ in 0..iterations {
            publisher.publish_all(&cfg, &store).expect("publish");
        }
        let publish = started.elapsed() / iterations;
        println!(
            "{size:>10} | {:>8.3} ({} KiB written) | {:>8.3} | {:>6.1}",
            ms(render),
            bytes / 1024,
            ms(publish),
            peak_rss_kib() as f64 / 1024.0
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
