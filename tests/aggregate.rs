//! The aggregator against loopback origins started by each test: the real binary, temp dirs.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::origin::{Origin, Reply};
use support::*;

const RSS: &str = "application/rss+xml";
const ATOM: &str = "application/atom+xml";

/// The base config plus `[fetch]` (loopback allowed) and the given sources and feeds.
fn site(extra: &str) -> Site {
    site_with("", extra)
}

/// As `site`, with more `[fetch]` keys.
fn site_with(fetch: &str, extra: &str) -> Site {
    let text = format!(
        "{BASE_CONFIG}\n[fetch]\nevery = \"30m\"\ntimeout = \"3s\"\nconnect_timeout = \"2s\"\nmax_body = \"512KiB\"\nallow_private = true\n{fetch}\n{extra}"
    );
    Site::with_config(&text)
}

fn source(name: &str, url: &str) -> String {
    format!("\n[[source]]\nname = \"{name}\"\nurl = \"{url}\"\n")
}

fn rss(items: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Mitra &amp; Kawan</title><link>https://mitra.example/</link><description>d</description>
{items}
</channel></rss>"#
    )
}

fn item(guid: &str, title: &str, link: &str, date: &str, body: &str) -> String {
    let guid = if guid.is_empty() { String::new() } else { format!("<guid isPermaLink=\"false\">{guid}</guid>") };
    let link = if link.is_empty() { String::new() } else { format!("<link>{link}</link>") };
    let date = if date.is_empty() { String::new() } else { format!("<pubDate>{date}</pubDate>") };
    format!("<item><title>{title}</title>{link}{guid}{date}<description><![CDATA[{body}]]></description></item>\n")
}

fn sources_json(site: &Site) -> Vec<Value> {
    let out = site.siar(&["sources", "--json"]);
    assert!(out.status.success(), "sources --json: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("sources --json is JSON")
}

fn state_of(site: &Site, name: &str) -> Value {
    sources_json(site).into_iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no source {name}"))["state"]
        .clone()
}

fn of_source<'a>(articles: &'a [Value], source: &str) -> Vec<&'a Value> {
    articles.iter().filter(|a| a["source"] == source).collect()
}

fn json_feed(site: &Site, name: &str) -> Value {
    serde_json::from_str(&site.feed(&format!("{name}.json"))).expect("JSON Feed")
}

fn secs_from_now(t: &Value) -> i64 {
    let t = chrono::DateTime::parse_from_rfc3339(t.as_str().expect("a time")).expect("rfc3339");
    (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds()
}

#[test]
fn first_poll_200_then_304_with_the_validators_echoed_byte_for_byte() {
    let origin = Origin::start();
    let etag = "W/\"v1-\u{e9}t\u{e9}\"";
    let body =
        rss(&item("a-1", "Satu", "https://mitra.example/1", "Fri, 27 Nov 2026 01:00:00 GMT", "<p>Isi satu.</p>"));
    origin.handle("/rss", move |r| {
        if r.header("if-none-match") == Some(etag.as_bytes()) {
            Reply::new(304).header("ETag", etag)
        } else {
            Reply::ok(RSS, body.clone()).header("ETag", etag).header("Last-Modified", "Fri, 27 Nov 2026 01:00:00 GMT")
        }
    });
    let site = site(&source("mitra", &origin.url("/rss")));
    site.run_once();
    assert_eq!(origin.hits("/rss"), 1);
    let first = origin.requests("/rss");
    assert_eq!(first[0].header("if-none-match"), None, "nothing to revalidate on the first poll");
    assert!(String::from_utf8_lossy(first[0].header("user-agent").expect("UA")).starts_with("siar/"));
    assert!(String::from_utf8_lossy(first[0].header("accept-encoding").unwrap_or_default()).contains("br"));
    let articles = site.list();
    assert_eq!(of_source(&articles, "mitra").len(), 1);
    let feed_after_first = site.feed("all.atom");

    site.run_once();
    let second = origin.requests("/rss");
    assert_eq!(second.len(), 2);
    assert_eq!(second[1].header("if-none-match"), Some(etag.as_bytes()), "ETag sent back byte for byte");
    assert_eq!(second[1].header("if-modified-since"), Some(&b"Fri, 27 Nov 2026 01:00:00 GMT"[..]));
    let state = state_of(&site, "mitra");
    assert_eq!(state["status"], "not modified");
    assert_eq!(state["failures"], 0);
    assert_eq!(state["not_modified"], 1);
    assert_eq!(site.feed("all.atom"), feed_after_first, "a 304 changes nothing");
}

#[test]
fn a_failed_body_keeps_no_validators_so_a_later_304_cannot_hide_the_fix() {
    let origin = Origin::start();
    origin.set("/rss", Reply::ok("text/html", "<html><body>maintenance</body></html>").header("ETag", "\"broken\""));
    let site = site(&source("mitra", &origin.url("/rss")));
    site.run_once();
    let state = state_of(&site, "mitra");
    assert_eq!(state["status"], "error");
    assert!(state["detail"].as_str().unwrap_or_default().contains("HTML page, not a feed"), "{state}");
    assert_eq!(state["etag"], Value::Null);
    origin.set("/rss", Reply::ok(RSS, rss(&item("x", "Pulih", "https://mitra.example/x", "", "<p>ok</p>"))));
    site.run_once();
    assert_eq!(origin.requests("/rss")[1].header("if-none-match"), None);
    assert_eq!(state_of(&site, "mitra")["status"], "ok");
}

#[test]
fn items_without_guid_or_link_keep_their_ids_across_polls_and_duplicate_guids_are_told_apart() {
    let origin = Origin::start();
    let items = [
        item("", "Tanpa guid dan tautan", "", "", "<p>Hanya teks.</p>"),
        item("", "Tanpa guid, ada tautan", "https://mitra.example/t", "", "<p>Teks.</p>"),
        item("dup", "Kembar pertama", "https://mitra.example/k1", "", "<p>Satu.</p>"),
        item("dup", "Kembar kedua", "https://mitra.example/k2", "", "<p>Dua.</p>"),
    ]
    .concat();
    // No validators: every poll is a full 200 and a full parse.
    origin.set("/rss", Reply::ok(RSS, rss(&items)));
    let site = site(&source("mitra", &origin.url("/rss")));
    site.run_once();
    let ids = |site: &Site| {
        let mut v: Vec<String> =
            json_feed(site, "all")["items"].as_array().expect("items").iter().map(|i| i["id"].to_string()).collect();
        v.sort();
        v
    };
    let first = ids(&site);
    assert_eq!(first.len(), 4, "two items sharing a guid are both kept: {first:?}");
    site.run_once();
    site.run_once();
    assert_eq!(ids(&site), first, "the same ids on every poll");
    assert_eq!(of_source(&site.list(), "mitra").len(), 4, "nothing new on a re-poll");
    for a in site.list() {
        assert_eq!(a["version"], 1, "unchanged items are not rewritten: {a}");
    }
}

#[test]
fn indonesian_dates_and_zone_names_are_read() {
    let origin = Origin::start();
    let items = [
        item("w1", "WIB", "https://mitra.example/w1", "Fri, 27 Nov 2026 10:00:00 WIB", "<p>a</p>"),
        item("w2", "WITA", "https://mitra.example/w2", "Jumat, 27 November 2026 10.00 WITA", "<p>b</p>"),
        item("w3", "WIT", "https://mitra.example/w3", "Kamis, 26 Nov 2026 23:30 WIT", "<p>c</p>"),
    ]
    .concat();
    origin.set("/rss", Reply::ok(RSS, rss(&items)));
    let site = site(&source("mitra", &origin.url("/rss")));
    site.run_once();
    let feed = json_feed(&site, "all");
    let published = |title: &str| {
        let item = feed["items"].as_array().expect("items").iter().find(|i| i["title"] == title).expect(title);
        chrono::DateTime::parse_from_rfc3339(item["date_published"].as_str().expect("date"))
            .expect("rfc3339")
            .with_timezone(&chrono::Utc)
            .to_rfc3339()
    };
    assert_eq!(published("WIB"), "2026-11-27T03:00:00+00:00");
    assert_eq!(published("WITA"), "2026-11-27T02:00:00+00:00");
    assert_eq!(published("WIT"), "2026-11-26T14:30:00+00:00");
}

#[test]
fn republished_html_is_sanitized_and_text_fields_are_text() {
    let origin = Origin::start();
    let body = r#"<p onclick="steal()">Isi <a href="javascript:alert(1)">j</a> <a href="/rel">r</a>
        <img src="x.png" onerror="alert(1)"><script>alert(1)</script><iframe src="https://e.vil/"></iframe></p>"#;
    let items = item("s1", "Judul &lt;b&gt;tebal&lt;/b&gt; &amp;nbsp;ok", "https://mitra.example/s1", "", body);
    origin.set("/rss", Reply::ok(RSS, rss(&items)));
    let site = site(&source("mitra", &origin.url("/rss")));
    site.run_once();
    let feed = json_feed(&site, "all");
    let it = &feed["items"][0];
    let html = it["content_html"].as_str().expect("html");
    for bad in ["<script", "onerror", "onclick", "javascript:", "<iframe"] {
        assert!(!html.contains(bad), "{bad} survived: {html}");
    }
    let rel = format!("href=\"{}\"", origin.url("/rel"));
    assert!(html.contains(&rel), "relative links resolved against the feed URL: {html}");
    assert!(html.contains("rel=\"noopener noreferrer\""), "{html}");
    assert_eq!(it["title"], "Judul tebal ok", "markup and entities in titles become text");
    for ext in ["rss", "atom"] {
        let doc = site.feed(&format!("all.{ext}"));
        assert!(!doc.contains("&lt;script") && !doc.contains("javascript:"), "{ext}: {doc}");
    }
    feedcheck(&site);
}

/// feedparser reads the `all` feed (which holds every stored article) with bozo == 0 and the
/// same ids, titles, links, dates and authors as the store.
fn feedcheck(site: &Site) {
    let Some(python) = feedparser_python() else { return };
    let articles = site.path("articles.json");
    std::fs::write(&articles, serde_json::to_vec(&site.list()).expect("json")).expect("write");
    let out = std::process::Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/feedcheck.py"))
        .arg(site.path("feeds"))
        .arg("all")
        .arg(&articles)
        .output()
        .expect("feedcheck");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.contains(" 0 problems"), "{report}");
}

#[test]
fn attribution_ids_and_relative_links_in_all_three_formats() {
    let origin = Origin::start();
    let atom = r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://wire.example/news/">
  <title>Kawat Berita</title><id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2026-11-27T01:00:00Z</updated><link rel="alternate" href="https://wire.example/"/>
  <entry><title>Iri kept</title><id>https://wire.example/news/1</id><updated>2026-11-27T01:00:00Z</updated>
    <link href="story/1"/><content type="html">&lt;p&gt;&lt;img src="pic.png"&gt;Satu&lt;/p&gt;</content></entry>
  <entry><title>Not an IRI</title><id>12345</id><updated>2026-11-27T00:00:00Z</updated>
    <link href="story/2"/><summary>Dua</summary></entry>
</feed>"#;
    origin.set("/atom", Reply::ok(ATOM, atom));
    let site = site(&source("wire", &origin.url("/atom")));
    site.run_once();
    let feed = json_feed(&site, "all");
    let items = feed["items"].as_array().expect("items");
    let kept = items.iter().find(|i| i["title"] == "Iri kept").expect("entry 1");
    assert_eq!(kept["id"], "https://wire.example/news/1", "an absolute IRI id is kept");
    assert_eq!(kept["url"], "https://wire.example/news/story/1", "relative link against xml:base");
    assert!(kept["content_html"].as_str().unwrap_or_default().contains("https://wire.example/news/pic.png"));
    assert_eq!(kept["_siar"]["source"]["name"], "wire");
    assert_eq!(kept["_siar"]["source"]["url"], origin.url("/atom"));
    assert_eq!(kept["_siar"]["source"]["title"], "Kawat Berita");
    let minted = items.iter().find(|i| i["title"] == "Not an IRI").expect("entry 2");
    let id = minted["id"].as_str().expect("id");
    assert!(id.starts_with("tag:news.example.org,2026-11-27:wire/"), "{id}");
    assert_eq!(minted["_siar"]["origin_id"], "12345");

    let atom_out = site.feed("all.atom");
    assert!(atom_out.contains("<id>https://wire.example/news/1</id>"), "same id in Atom");
    assert!(atom_out.contains(&format!("<id>{id}</id>")), "same minted id in Atom");
    assert!(atom_out.contains("<source>") && atom_out.contains("urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6"));
    assert!(atom_out.contains(&format!("href=\"{}\" rel=\"self\"", origin.url("/atom"))), "{atom_out}");
    let rss_out = site.feed("all.rss");
    assert!(rss_out.contains(&format!("<source url=\"{}\">Kawat Berita</source>", origin.url("/atom"))), "{rss_out}");
    assert!(rss_out.contains(&format!(">{id}</guid>")), "same id in RSS");
    feedcheck(&site);
}

#[test]
fn the_same_story_from_two_sources_is_stored_once_with_both_provenances() {
    let origin = Origin::start();
    let long = "Kalimat panjang tentang peristiwa yang sama. ".repeat(12);
    origin.set(
        "/a",
        Reply::ok(RSS, rss(&item("a-9", "Gempa di Laut", "https://www.story.example/gempa?utm_source=x", "", &long))),
    );
    origin.set("/b", Reply::ok(RSS, rss(&item("b-77", "Gempa di laut", "http://story.example/gempa/", "", &long))));
    // Same title and body, different links: merged by the story, not the link.
    origin.set(
        "/c",
        Reply::ok(RSS, rss(&item("c-1", "Gempa di Laut", "https://mirror.example/g", "", &format!("<p>{long}</p>")))),
    );
    // Same boilerplate body, different stories: never merged.
    origin.set("/d", Reply::ok(RSS, rss(&item("d-1", "Lain", "https://d.example/1", "", "Baca selengkapnya"))));
    origin.set("/e", Reply::ok(RSS, rss(&item("e-1", "Beda", "https://e.example/1", "", "Baca selengkapnya"))));
    // One guid (an IRI, republished as the id) from two sources with different links: one item.
    let shared = "https://shared.example/1";
    origin.set("/f", Reply::ok(RSS, rss(&item(shared, "Bersama", "https://origin.example/shared", "", "<p>f</p>"))));
    origin.set(
        "/g",
        Reply::ok(RSS, rss(&item(shared, "Bersama juga", "https://origin2.example/shared", "", "<p>g</p>"))),
    );
    let mut cfg = String::new();
    for n in ["a", "b", "c", "d", "e", "f", "g"] {
        cfg += &source(n, &origin.url(&format!("/{n}")));
    }
    let site = site(&cfg);
    site.run_once();
    let feed = json_feed(&site, "all");
    let items = feed["items"].as_array().expect("items");
    let gempa: Vec<&Value> = items
        .iter()
        .filter(|i| i["title"].as_str().unwrap_or_default().eq_ignore_ascii_case("gempa di laut"))
        .collect();
    assert_eq!(gempa.len(), 1, "one story, one item: {items:?}");
    let prov = gempa[0]["_siar"]["provenance"].as_array().expect("provenance");
    assert_eq!(prov.len(), 2, "{prov:?}");
    assert_eq!(items.len(), 4, "d and e are different stories; f and g one item: {items:?}");
    assert_eq!(items.iter().filter(|i| i["id"] == shared).count(), 1, "never two items with one id");
    site.run_once();
    assert_eq!(json_feed(&site, "all")["items"].as_array().map(Vec::len), Some(4), "a re-poll merges again, quietly");
    feedcheck(&site);
}

#[test]
fn feeds_select_sources_and_cap_each_source() {
    let origin = Origin::start();
    let many: String = (1..=5)
        .map(|i| {
            item(
                &format!("a{i}"),
                &format!("A{i}"),
                &format!("https://a.example/{i}"),
                &format!("Fri, 27 Nov 2026 0{i}:00:00 GMT"),
                "<p>a</p>",
            )
        })
        .collect();
    origin.set("/a", Reply::ok(RSS, rss(&many)));
    origin.set(
        "/b",
        Reply::ok(RSS, rss(&item("b1", "B1", "https://b.example/1", "Thu, 26 Nov 2026 01:00:00 GMT", "<p>b</p>"))),
    );
    let extra = format!(
        "{}{}\n[[feed]]\nname = \"only-a\"\nsources = [\"a\"]\n\n[[feed]]\nname = \"merged\"\nsources = [\"a\", \"b\", \"drop\"]\nper_source_limit = 2\n",
        source("a", &origin.url("/a")),
        source("b", &origin.url("/b"))
    );
    let site = site(&extra);
    site.run_once();
    let titles = |name: &str| -> Vec<String> {
        json_feed(&site, name)["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["title"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(titles("only-a"), ["A5", "A4", "A3", "A2", "A1"]);
    assert_eq!(titles("merged"), ["A5", "A4", "B1"]);
}

#[test]
fn a_permanent_redirect_moves_the_source_and_410_disables_it() {
    let origin = Origin::start();
    let new_url = origin.url("/new");
    origin.set("/old", Reply::new(301).header("Location", &new_url));
    origin.set("/new", Reply::ok(RSS, rss(&item("m", "Pindah", "https://m.example/1", "", "<p>m</p>"))));
    origin.set("/tmp", Reply::new(302).header("Location", origin.url("/new")));
    origin.set("/gone", Reply::new(410));
    let site = site(&format!(
        "{}{}{}",
        source("moved", &origin.url("/old")),
        source("temp", &origin.url("/tmp")),
        source("gone", &origin.url("/gone"))
    ));
    let log = site.run_once();
    assert!(log.contains("moved permanently") && log.contains(&new_url), "ops are told: {log}");
    assert_eq!(state_of(&site, "moved")["url"], new_url.as_str());
    assert_eq!(state_of(&site, "temp")["url"], origin.url("/tmp"), "a 302 does not move the source");
    let gone = state_of(&site, "gone");
    assert_eq!(gone["status"], "disabled");
    assert!(gone["disabled"].as_str().unwrap_or_default().contains("410"));

    site.run_once();
    assert_eq!(origin.hits("/old"), 1, "the new URL is polled from then on");
    assert_eq!(origin.hits("/new"), 4, "moved: 2 polls, temp: 2 polls through /tmp");
    assert_eq!(origin.hits("/tmp"), 2);
    assert_eq!(origin.hits("/gone"), 1, "a disabled source is not polled");
    let text = String::from_utf8_lossy(&site.siar(&["sources"]).stdout).into_owned();
    assert!(text.contains("disabled: 410 Gone"), "{text}");
    assert!(text.contains(&format!("update url = \"{new_url}\"")), "{text}");
}

#[test]
fn retry_after_backoff_and_recovery_by_the_numbers() {
    let origin = Origin::start();
    origin.set("/rss", Reply::new(503).header("Retry-After", "7200"));
    let site = site_with("max_backoff = \"6h\"", &format!("{}every = \"10m\"\n", source("flaky", &origin.url("/rss"))));
    site.run_once();
    let s = state_of(&site, "flaky");
    assert_eq!(s["failures"], 1);
    let wait = secs_from_now(&s["next_poll"]);
    assert!((7100..=7200 + 300).contains(&wait), "Retry-After 2h honoured: {wait}s");
    // `run --once` polls whether due or not; every failure doubles the wait from the interval.
    origin.set("/rss", Reply::new(500));
    let mut waits = Vec::new();
    for _ in 0..4 {
        site.run_once();
        waits.push(secs_from_now(&state_of(&site, "flaky")["next_poll"]));
    }
    let expect = [1200, 2400, 4800, 9600];
    for (w, e) in waits.iter().zip(expect) {
        assert!((e - 5..=e + e / 10 + 5).contains(w), "backoff {waits:?}, expected about {expect:?}");
    }
    for _ in 0..4 {
        site.run_once();
    }
    let capped = secs_from_now(&state_of(&site, "flaky")["next_poll"]);
    assert!((21_590..=21_600 + 300).contains(&capped), "capped at max_backoff 6h: {capped}");
    assert_eq!(state_of(&site, "flaky")["failures"], 9);
    origin.set("/rss", Reply::ok(RSS, rss(&item("r", "Pulih", "https://r.example/1", "", "<p>r</p>"))));
    site.run_once();
    let s = state_of(&site, "flaky");
    assert_eq!((s["failures"].as_u64(), s["status"].as_str()), (Some(0), Some("ok")));
    let wait = secs_from_now(&s["next_poll"]);
    assert!((590..=660).contains(&wait), "back to the interval: {wait}");
}

#[test]
fn the_daemon_backs_off_and_resumes_by_itself() {
    let origin = Origin::start();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    origin.handle("/rss", move |_| {
        if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3 {
            Reply::new(500)
        } else {
            Reply::ok(RSS, rss(&item("d", "Akhirnya", "https://d.example/1", "", "<p>d</p>")))
        }
    });
    let site = site_with("max_backoff = \"2s\"", &format!("{}every = \"1s\"\n", source("flaky", &origin.url("/rss"))));
    let started = Instant::now();
    let mut daemon = site.spawn();
    wait_until(Duration::from_secs(30), "the source to recover and its item to be published", || {
        site.path("feeds/all.json").exists() && site.feed("all.json").contains("Akhirnya")
    });
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 4);
    assert!(started.elapsed() >= Duration::from_secs(3), "it did wait between failures");
    // The store is the daemon's: `siar sources` asks it over the control socket.
    let state = state_of(&site, "flaky");
    assert_eq!((state["status"].as_str(), state["failures"].as_u64()), (Some("ok"), Some(0)), "{state}");
    assert!(state["errors"].as_u64() >= Some(3));
    assert!(daemon.stop().success());
    let log = daemon.log();
    assert!(log.contains("failure 3 in a row"), "{log}");
}

#[test]
fn when_every_source_fails_at_once_it_is_not_counted() {
    // Two sources on ports nobody listens on: connection refused, as when the network is down.
    let closed = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        format!("http://127.0.0.1:{port}/rss")
    };
    let site2 = site(&format!("{}{}", source("one", &closed()), source("two", &closed())));
    site2.run_once();
    for n in ["one", "two"] {
        let s = state_of(&site2, n);
        assert_eq!(s["status"], "error");
        assert_eq!(s["failures"], 0, "{n}: all failing at once is not the source's fault: {s}");
    }
    let site1 = site(&source("alone", &closed()));
    site1.run_once();
    assert_eq!(state_of(&site1, "alone")["failures"], 1, "a single failing source is counted");
}

#[test]
fn hostile_origins_get_a_clear_status_and_do_not_hurt_the_others() {
    let origin = Origin::start();
    origin.set("/good", Reply::ok(RSS, rss(&item("g", "Baik", "https://g.example/1", "", "<p>g</p>"))));
    origin.set("/big", Reply::ok(RSS, vec![b' '; 600 * 1024]));
    origin.set("/bomb", Reply { status: 200, gzip_zeros: Some(1 << 30), ..Default::default() });
    let mut drip = Reply::ok(RSS, rss(&item("s", "Lambat", "https://s.example/1", "", "<p>s</p>")));
    drip.drip = Some(Duration::from_millis(200));
    origin.set("/drip", drip);
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol9 "&lol3;&lol3;&lol3;">
<!ENTITY xxe SYSTEM "file:///etc/hostname">]>
<rss version="2.0"><channel><title>&lol9;</title><link>https://l.example/</link><description>x</description>
<item><title>Tawa &lol9; &xxe;</title><link>https://l.example/1</link><description>&lol9;</description></item></channel></rss>"#;
    origin.set("/laughs", Reply::ok(RSS, laughs));
    origin
        .set("/html", Reply::ok("text/html", "<!DOCTYPE html><html><head><title>x</title></head><body></body></html>"));
    origin.set("/loop", Reply::new(302).header("Location", "/loop2"));
    origin.set("/loop2", Reply::new(302).header("Location", "/loop"));
    origin.set("/ftp", Reply::new(302).header("Location", "ftp://files.example/feed"));
    origin.set("/latin", Reply::ok(RSS, b"<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel><title>L</title><link>https://x.example/</link><description>d</description><item><title>Caf\xe9 \xff</title><link>https://x.example/c</link></item></channel></rss>".to_vec()));
    origin.set("/noversion", Reply::ok(RSS, "<rss><channel><title>N</title><link>https://n.example/</link><description>d</description><item><title>Tanpa versi</title><link>https://n.example/1</link></item></channel></rss>"));
    let names = ["good", "big", "bomb", "drip", "laughs", "html", "loop", "ftp", "latin", "noversion"];
    let cfg: String = names.iter().map(|n| source(n, &origin.url(&format!("/{n}")))).collect();
    let site = site(&cfg);
    let started = Instant::now();
    site.run_once();
    assert!(started.elapsed() < Duration::from_secs(20), "bounded: {:?}", started.elapsed());
    let detail = |n: &str| {
        let s = state_of(&site, n);
        format!("{} {}", s["status"].as_str().unwrap_or_default(), s["detail"].as_str().unwrap_or_default())
    };
    assert!(detail("good").starts_with("ok"), "{}", detail("good"));
    assert!(detail("big").contains("larger than max_body"), "{}", detail("big"));
    assert!(detail("bomb").contains("larger than max_body"), "decoded size is capped: {}", detail("bomb"));
    assert!(detail("drip").contains("timed out"), "{}", detail("drip"));
    assert!(detail("html").contains("not a feed"), "{}", detail("html"));
    assert!(detail("loop").contains("redirect loop"), "{}", detail("loop"));
    assert!(detail("ftp").contains("not an http or https URL"), "{}", detail("ftp"));
    assert!(detail("latin").starts_with("ok"), "not UTF-8 although declared so: read anyway: {}", detail("latin"));
    assert!(detail("noversion").starts_with("ok"), "<rss> without a version is read: {}", detail("noversion"));
    let feed = site.feed("all.json");
    assert!(feed.contains("Baik") && feed.contains("Tanpa versi") && feed.contains("\"Caf\u{e9} \u{ff}\""), "{feed}");
    assert!(!feed.contains("lollollol"), "entities are never expanded");
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert!(host.trim().is_empty() || !feed.contains(host.trim()), "no external entity is read");
    feedcheck(&site);
}

#[test]
fn private_destinations_are_refused_unless_allowed() {
    let origin = Origin::start();
    origin.set("/rss", Reply::ok(RSS, rss(&item("p", "Rahasia", "https://p.example/1", "", "<p>p</p>"))));
    let port = origin.addr.port();
    let cfg = format!(
        "{}allow_private = false\n{}allow_private = false\n{}",
        source("literal", &origin.url("/rss")),
        source("named", &format!("http://localhost:{port}/rss")),
        source("allowed", &origin.url("/rss"))
    );
    let site = site(&cfg);
    site.run_once();
    for n in ["literal", "named"] {
        let s = state_of(&site, n);
        assert!(s["detail"].as_str().unwrap_or_default().contains("destination not allowed"), "{n}: {s}");
    }
    assert_eq!(origin.hits("/rss"), 1, "only the source that allows private addresses reached it");
}

#[test]
fn sources_import_and_export_opml() {
    let site = site("");
    let opml = site.path("feeds.opml");
    std::fs::write(
        &opml,
        r#"<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>
<outline text="Nasional"><outline text="Antara News" type="rss" xmlUrl="https://antara.example/rss.xml"/>
<outline text="Antara News" type="rss" xmlUrl="https://antara.example/other.xml"/></outline>
<outline text="Wire" type="rss" xmlUrl="https://wire.example/atom"/></body></opml>"#,
    )
    .expect("opml");
    let out = site.siar(&["sources", "import", opml.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("added 3 sources"));
    assert!(site.siar(&["check"]).status.success());
    let again = site.siar(&["sources", "import", opml.to_str().expect("utf-8")]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to add"), "importing twice adds nothing");
    let exported = String::from_utf8_lossy(&site.siar(&["sources", "export"]).stdout).into_owned();
    for needle in [
        "<opml version=\"2.0\">",
        "xmlUrl=\"https://antara.example/rss.xml\"",
        "text=\"antara-news-2\"",
        "category=\"Nasional\"",
        "xmlUrl=\"https://wire.example/atom\"",
    ] {
        assert!(exported.contains(needle), "{needle} missing in {exported}");
    }
}

#[test]
fn config_errors_name_the_source_key() {
    for (extra, needle) in [
        ("\n[[source]]\nname = \"Bad Name\"\nurl = \"https://x.example/\"\n", "[[source]] #1 (\"Bad Name\") name"),
        ("\n[[source]]\nname = \"drop\"\nurl = \"https://x.example/\"\n", "drop folder"),
        ("\n[[source]]\nname = \"a\"\nurl = \"ftp://x.example/\"\n", "url"),
        ("\n[[source]]\nname = \"a\"\nurl = \"https://x.example/\"\nevery = \"often\"\n", "every"),
        (
            "\n[[source]]\nname = \"a\"\nurl = \"https://x.example/\"\nevery = \"5m\"\nschedule = \"@hourly\"\n",
            "either every or schedule",
        ),
        ("\n[[feed]]\nname = \"x\"\nsources = [\"nope\"]\n", "sources: \"nope\""),
    ] {
        let s = site(extra);
        let out = s.siar(&["check"]);
        assert_eq!(out.status.code(), Some(78), "{extra}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
}

#[test]
fn retention_keeps_the_newest_and_pruned_items_stay_gone() {
    let origin = Origin::start();
    let items: String = (1..=4)
        .map(|i| {
            item(
                &format!("r{i}"),
                &format!("R{i}"),
                &format!("https://r.example/{i}"),
                &format!("Fri, 27 Nov 2026 0{i}:00:00 GMT"),
                "<p>r</p>",
            )
        })
        .chain([item("old", "Lama", "https://r.example/old", "Mon, 02 Mar 2020 01:00:00 GMT", "<p>lama</p>")])
        .collect();
    origin.set("/rss", Reply::ok(RSS, rss(&items)));
    let site = site(&format!("{}max_items = 2\nmax_age = \"365d\"\n", source("r", &origin.url("/rss"))));
    site.run_once();
    let titles = |site: &Site| -> Vec<String> {
        site.list().iter().map(|a| a["title"].as_str().unwrap_or_default().to_string()).collect()
    };
    assert_eq!(titles(&site), ["R4", "R3"]);
    site.run_once();
    assert_eq!(titles(&site), ["R4", "R3"], "a re-fetch does not bring pruned items back");
    let detail = state_of(&site, "r")["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("0 new"), "{detail}");
}

#[test]
fn content_location_is_the_base_when_the_feed_names_none() {
    let origin = Origin::start();
    let body = rss(&item("c", "Basis", "/artikel/1", "", "<p><a href=\"lain\">x</a></p>"));
    origin.set("/rss", Reply::ok(RSS, body).header("Content-Location", "https://cdn.example/feeds/main.xml"));
    let site = site(&source("c", &origin.url("/rss")));
    site.run_once();
    let feed = json_feed(&site, "all");
    assert_eq!(feed["items"][0]["url"], "https://cdn.example/artikel/1");
    assert!(feed["items"][0]["content_html"].as_str().unwrap_or_default().contains("https://cdn.example/feeds/lain"));
}

#[test]
fn every_feed_format_is_read() {
    let origin = Origin::start();
    let docs: [(&str, &str, String); 6] = [
        ("rss091", RSS, r#"<?xml version="1.0"?><rss version="0.91"><channel><title>A</title><link>https://a.example/</link><description>d</description><language>en-us</language>
<item><title>RSS 0.91 item</title><link>https://a.example/1</link><description>Satu</description></item></channel></rss>"#.into()),
        ("rss10", "application/rdf+xml", r#"<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://b.example/"><title>B</title><link>https://b.example/</link><description>d</description></channel>
<item rdf:about="https://b.example/1"><title>RSS 1.0 item</title><link>https://b.example/1</link><dc:date>2026-11-26T10:00:00+07:00</dc:date><dc:creator>Ani</dc:creator></item></rdf:RDF>"#.into()),
        ("atom03", ATOM, r#"<?xml version="1.0"?><feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>C</title><link rel="alternate" type="text/html" href="https://c.example/"/><modified>2026-11-26T00:00:00Z</modified>
<entry><title>Atom 0.3 entry</title><link rel="alternate" type="text/html" href="https://c.example/1"/><id>tag:c.example,2026:1</id><issued>2026-11-26T00:00:00Z</issued><modified>2026-11-26T00:00:00Z</modified></entry></feed>"#.into()),
        ("json10", "application/json", r#"{"version":"https://jsonfeed.org/version/1","title":"D","home_page_url":"https://d.example/","items":[{"id":"1","url":"https://d.example/1","title":"JSON 1.0 item","content_text":"Baris satu.\n\nBaris dua.","date_published":"2026-11-26T00:00:00Z","author":{"name":"Budi"}}]}"#.into()),
        ("json11", "application/feed+json", r#"{"version":"https://jsonfeed.org/version/1.1","title":"E","items":[{"id":"https://e.example/1","url":"https://e.example/1","title":"JSON 1.1 item","content_html":"<p>Isi <b>tebal</b></p>","summary":"Ringkas <i>saja</i>","authors":[{"name":"Cici"}]}]}"#.into()),
        ("rss20", RSS, rss(&item("f", "RSS 2.0 item", "https://f.example/1", "", "<p>f</p>"))),
    ];
    let mut cfg = String::new();
    for (name, ct, body) in &docs {
        origin.set(&format!("/{name}"), Reply::ok(ct, body.clone()));
        cfg += &source(name, &origin.url(&format!("/{name}")));
    }
    let site = site(&cfg);
    site.run_once();
    let articles = site.list();
    for (name, _, _) in &docs {
        let mine = of_source(&articles, name);
        assert_eq!(mine.len(), 1, "{name}: {:?}", state_of(&site, name));
    }
    let by_title = |t: &str| articles.iter().find(|a| a["title"] == t).unwrap_or_else(|| panic!("{t} missing"));
    assert_eq!(by_title("RSS 1.0 item")["authors"][0], "Ani");
    assert_eq!(by_title("Atom 0.3 entry")["id"], "tag:c.example,2026:1");
    assert_eq!(by_title("JSON 1.0 item")["content_html"], "<p>Baris satu.</p>\n<p>Baris dua.</p>");
    assert_eq!(by_title("JSON 1.0 item")["authors"][0], "Budi");
    assert_eq!(by_title("JSON 1.1 item")["summary"], "Ringkas saja", "JSON summary is plain text");
    assert_eq!(by_title("JSON 1.1 item")["content_html"], "<p>Isi <b>tebal</b></p>");
    feedcheck(&site);
}

#[test]
fn more_than_five_redirects_is_an_error() {
    let origin = Origin::start();
    for i in 1..=6 {
        origin.set(&format!("/r{i}"), Reply::new(302).header("Location", format!("/r{}", i + 1)));
    }
    origin.set("/r7", Reply::ok(RSS, rss(&item("x", "X", "https://x.example/1", "", "<p>x</p>"))));
    origin.set("/r3only", Reply::new(301).header("Location", "/r5"));
    let site = site(&format!("{}{}", source("long", &origin.url("/r1")), source("short", &origin.url("/r3only"))));
    site.run_once();
    let long = state_of(&site, "long");
    assert!(long["detail"].as_str().unwrap_or_default().contains("more than 5 redirects"), "{long}");
    assert_eq!(origin.hits("/r7"), 1, "only the short chain (3 hops) reached the feed");
    assert_eq!(state_of(&site, "short")["status"], "ok");
}

#[test]
fn a_changed_item_keeps_its_id_gets_a_new_updated_and_keeps_history() {
    let origin = Origin::start();
    let v1 = rss(&item(
        "https://c.example/1",
        "Awal",
        "https://c.example/1",
        "Fri, 27 Nov 2026 01:00:00 GMT",
        "<p>Versi satu.</p>",
    ));
    let v2 = rss(&item(
        "https://c.example/1",
        "Awal (ralat)",
        "https://c.example/1",
        "Fri, 27 Nov 2026 01:00:00 GMT",
        "<p>Versi dua.</p>",
    ));
    origin.set("/rss", Reply::ok(RSS, v1));
    let site = site(&source("c", &origin.url("/rss")));
    site.run_once();
    let before = site.list().remove(0);
    origin.set("/rss", Reply::ok(RSS, v2));
    site.run_once();
    let list = site.list();
    assert_eq!(list.len(), 1);
    let after = &list[0];
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["id"], "https://c.example/1");
    assert_eq!(after["version"], 2);
    assert_eq!(after["title"], "Awal (ralat)");
    assert!(secs_from_now(&after["updated"]) > secs_from_now(&before["updated"]) - 1);
    assert!(after["updated"] != before["updated"], "a new updated time");
    assert_eq!(after["published"], before["published"], "the origin's date stays");
    let atom = site.feed("all.atom");
    assert!(atom.contains("Awal (ralat)") && !atom.contains("Versi satu"), "{atom}");
    let store = siar::store::Store::open(&site.path("state")).expect("the store, siar having exited");
    let history = store.history(after["key"].as_str().expect("key")).expect("history");
    assert_eq!(history.iter().map(|a| a.title.as_str()).collect::<Vec<_>>(), ["Awal"]);
}

#[test]
fn enclosures_are_republished_in_all_three_formats() {
    let origin = Origin::start();
    let podcast = rss(
        r#"<item><title>Episode 1</title><link>https://pod.example/1</link><guid>https://pod.example/1</guid>
<enclosure url="https://cdn.pod.example/ep1.mp3" length="12345678" type="audio/mpeg"/><description>Dengar.</description></item>"#,
    );
    let atom = r#"<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Foto</title><id>tag:foto.example,2026:feed</id><updated>2026-11-27T00:00:00Z</updated>
<entry><title>Galeri</title><id>tag:foto.example,2026:1</id><updated>2026-11-27T00:00:00Z</updated><link href="https://foto.example/1"/>
<link rel="enclosure" type="image/jpeg" length="2048" href="https://foto.example/1.jpg"/><link rel="enclosure" type="image/jpeg" href="/2.jpg"/>
<summary>Dua foto</summary></entry></feed>"#;
    let json = r#"{"version":"https://jsonfeed.org/version/1.1","title":"J","items":[{"id":"https://j.example/1","url":"https://j.example/1","title":"Lampiran","content_text":"Isi.","attachments":[{"url":"https://j.example/a.pdf","mime_type":"application/pdf","size_in_bytes":999}]}]}"#;
    origin.set("/pod", Reply::ok(RSS, podcast));
    origin.set("/foto", Reply::ok(ATOM, atom));
    origin.set("/json", Reply::ok("application/feed+json", json));
    let site = site(&format!(
        "{}{}{}",
        source("pod", &origin.url("/pod")),
        source("foto", &origin.url("/foto")),
        source("json", &origin.url("/json"))
    ));
    site.run_once();
    let feed = json_feed(&site, "all");
    let item = |title: &str| {
        feed["items"].as_array().expect("items").iter().find(|i| i["title"] == title).cloned().expect(title)
    };
    let ep = item("Episode 1");
    assert_eq!(ep["url"], "https://pod.example/1");
    assert_eq!(ep["attachments"][0]["url"], "https://cdn.pod.example/ep1.mp3");
    assert_eq!(ep["attachments"][0]["mime_type"], "audio/mpeg");
    assert_eq!(ep["attachments"][0]["size_in_bytes"], 12345678);
    let gal = item("Galeri");
    assert_eq!(gal["url"], "https://foto.example/1", "an enclosure is never the item's link");
    assert_eq!(gal["attachments"].as_array().map(Vec::len), Some(2));
    assert_eq!(gal["attachments"][1]["url"], origin.url("/2.jpg"));
    let att = item("Lampiran");
    assert_eq!(att["url"], "https://j.example/1");
    assert_eq!(att["attachments"][0]["url"], "https://j.example/a.pdf");
    let rss_out = site.feed("all.rss");
    assert!(
        rss_out.contains(r#"<enclosure url="https://cdn.pod.example/ep1.mp3" length="12345678" type="audio/mpeg"/>"#),
        "{rss_out}"
    );
    let atom_out = site.feed("all.atom");
    assert!(atom_out.contains(r#"rel="enclosure""#) && atom_out.contains("https://foto.example/1.jpg"), "{atom_out}");
    feedcheck(&site);
}

/// The store's export carries what only polling made: fetched items, merges of one story from two
/// sources, retention's removals (not revived by a re-poll), source states. `verify` is clean on
/// such a store; export -> import -> export gives the same bytes, and the imported store publishes
/// the same feeds and does not bring a pruned item back.
#[test]
fn export_and_import_keep_fetched_items_merges_and_retention() {
    let origin = Origin::start();
    let long = "Kalimat panjang tentang peristiwa yang sama. ".repeat(12);
    origin.set("/a", Reply::ok(RSS, rss(&item("a-9", "Gempa di Laut", "https://www.story.example/gempa", "", &long))));
    origin.set("/b", Reply::ok(RSS, rss(&item("b-77", "Gempa di laut", "http://story.example/gempa/", "", &long))));
    let items: String = (1..=4)
        .map(|i| {
            item(
                &format!("r{i}"),
                &format!("R{i}"),
                &format!("https://r.example/{i}"),
                &format!("Fri, 27 Nov 2026 0{i}:00:00 GMT"),
                "<p>r</p>",
            )
        })
        .collect();
    origin.set("/r", Reply::ok(RSS, rss(&items)));
    let cfg = format!(
        "{}{}{}max_items = 2\n",
        source("a", &origin.url("/a")),
        source("b", &origin.url("/b")),
        source("r", &origin.url("/r"))
    );
    let site = site(&cfg);
    site.run_once();
    let out = site.siar(&["verify"]);
    assert!(out.status.success(), "verify after merges and retention: {}", String::from_utf8_lossy(&out.stdout));
    let export = site.siar(&["export"]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let text = String::from_utf8_lossy(&export.stdout).into_owned();
    for record in ["\"record\":\"alias\"", "\"record\":\"pruned\"", "\"record\":\"source\"", "\"record\":\"story\""] {
        assert!(text.contains(record), "no {record} in the export");
    }

    let other = Site::with_config(&fs_config(&site));
    let file = site.path("export.jsonl");
    std::fs::write(&file, &export.stdout).expect("write");
    let out = other.siar(&["import", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = other.siar(&["export"]);
    assert!(again.stdout == export.stdout, "export -> import -> export differs");
    other.run_once();
    for f in ["all.rss", "all.atom", "all.json"] {
        assert!(
            std::fs::read(other.path("feeds").join(f)).ok() == std::fs::read(site.path("feeds").join(f)).ok(),
            "{f} differs"
        );
    }
    let titles: Vec<String> =
        other.list().iter().map(|a| a["title"].as_str().unwrap_or_default().to_string()).collect();
    assert!(!titles.iter().any(|t| t == "R1" || t == "R2"), "a pruned item came back after the import: {titles:?}");
}

fn fs_config(site: &Site) -> String {
    std::fs::read_to_string(&site.config).expect("config")
}
