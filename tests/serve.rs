//! The built-in server, end to end: the real binary on a loopback port, a raw HTTP client that
//! sends targets byte for byte, a loopback hub, and newsboat as a real feed reader.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::origin::{Origin, Reply};
use support::{BASE_CONFIG, Daemon, Resp, Site, http, wait_until};

const SERVER: &str = "\n[server]\nlisten = \"127.0.0.1:0\"\ncache_max_age = \"1m\"\n";

fn article(slug: &str, title: &str, date: &str) -> Vec<u8> {
    format!(
        "Title: {title}\nAuthor: Siti Aminah\nDate: {date}\nCategory: Kota\nSlug: {slug}\n\n\
         JAKARTA - {title}. Warga kota menyambut kabar ini dengan gembira, kata pejabat setempat.\n"
    )
    .into_bytes()
}

fn site(extra: &str) -> Site {
    Site::with_config(&format!("{BASE_CONFIG}{extra}"))
}

fn get(addr: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    http(addr, "GET", target, headers)
}

/// Waits until the served document contains `needle`.
fn wait_served(addr: &str, target: &str, needle: &str) -> Resp {
    let mut last = None;
    wait_until(Duration::from_secs(30), &format!("{target} to contain {needle:?}"), || {
        let r = get(addr, target, &[]);
        let hit = r.status == 200 && r.text().contains(needle);
        last = Some(r);
        hit
    });
    last.expect("a response")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("valid gzip");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut &bytes[..], &mut out).expect("valid brotli");
    out
}

#[test]
fn feeds_are_served_with_types_validators_and_compression() {
    let site = site(SERVER);
    site.drop_file("satu.txt", &article("satu", "Banjir surut di Bandung", "2026-11-20 09:30"));
    site.drop_file("dua.txt", &article("dua", "Pasar ramai menjelang akhir tahun", "2026-11-21 10:00"));
    let daemon = site.spawn();
    let addr = daemon.addr();
    wait_served(&addr, "/feeds/all.atom", "Pasar ramai");

    for (ext, ctype) in [
        ("rss", "application/rss+xml; charset=utf-8"),
        ("atom", "application/atom+xml; charset=utf-8"),
        ("json", "application/feed+json; charset=utf-8"),
    ] {
        let r = wait_served(&addr, &format!("/feeds/all.{ext}"), "Pasar ramai");
        assert_eq!(r.header("content-type"), Some(ctype), "{ext}");
        assert_eq!(r.body, std::fs::read(site.path("feeds").join(format!("all.{ext}"))).expect("file"), "{ext}");
        assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert_eq!(r.header("content-encoding"), None);
        assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
        let link = r.header("link").expect("Link header");
        assert!(link.contains(&format!("<https://news.example.org/feeds/all.{ext}>; rel=\"self\"")), "{link}");
    }

    let full = get(&addr, "/feeds/all.atom", &[]);
    let etag = full.header("etag").expect("ETag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10, "strong ETag: {etag}");
    let lm = full.header("last-modified").expect("Last-Modified").to_string();
    let lm_time = httpdate::parse_http_date(&lm).expect("Last-Modified is an HTTP date");

    // If-None-Match: the tag, a list holding it, `*` -> 304 with validators and no body.
    for inm in [etag.clone(), format!("\"other\", {etag}"), format!("W/{etag}"), "*".to_string()] {
        let r = get(&addr, "/feeds/all.atom", &[("If-None-Match", &inm)]);
        assert_eq!(r.status, 304, "If-None-Match: {inm}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(r.header("last-modified"), Some(lm.as_str()));
        assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    }
    assert_eq!(get(&addr, "/feeds/all.atom", &[("If-None-Match", "\"stale\"")]).status, 200);
    // If-Modified-Since: not modified since then -> 304; since before -> 200.
    assert_eq!(get(&addr, "/feeds/all.atom", &[("If-Modified-Since", &lm)]).status, 304);
    // A date in the future is not a valid validator: ignored. So is garbage.
    let future = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600));
    assert_eq!(get(&addr, "/feeds/all.atom", &[("If-Modified-Since", &future)]).status, 200);
    assert_eq!(get(&addr, "/feeds/all.atom", &[("If-Modified-Since", "yesterday")]).status, 200);
    let earlier = httpdate::fmt_http_date(lm_time - Duration::from_secs(1));
    let r = get(&addr, "/feeds/all.atom", &[("If-Modified-Since", &earlier)]);
    assert_eq!((r.status, r.body.len()), (200, full.body.len()));
    // Both present: If-None-Match decides.
    let r = get(&addr, "/feeds/all.atom", &[("If-None-Match", "\"stale\""), ("If-Modified-Since", &lm)]);
    assert_eq!(r.status, 200, "a failed If-None-Match wins over a matching If-Modified-Since");

    // HEAD: the same headers, the GET length, no body.
    let r = http(&addr, "HEAD", "/feeds/all.atom", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some(full.body.len().to_string().as_str()));
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    // Compression: gzip and brotli by Accept-Encoding, each with its own strong ETag that still
    // revalidates; identity when nothing acceptable is offered.
    let gz = get(&addr, "/feeds/all.atom", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&gz.body), full.body);
    assert!(gz.body.len() < full.body.len());
    let br = get(&addr, "/feeds/all.atom", &[("Accept-Encoding", "gzip, deflate, br")]);
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&br.body), full.body);
    let (gz_tag, br_tag) = (gz.header("etag").expect("etag"), br.header("etag").expect("etag"));
    assert!(gz_tag != etag && br_tag != etag && gz_tag != br_tag, "{etag} {gz_tag} {br_tag}");
    let r = get(&addr, "/feeds/all.atom", &[("Accept-Encoding", "gzip"), ("If-None-Match", gz_tag)]);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(gz_tag));
    // Another encoding's tag is another representation: no 304 for it.
    assert_eq!(get(&addr, "/feeds/all.atom", &[("Accept-Encoding", "gzip"), ("If-None-Match", br_tag)]).status, 200);
    assert_eq!(get(&addr, "/feeds/all.atom", &[("If-None-Match", gz_tag)]).status, 200);
    let r = get(&addr, "/feeds/all.atom", &[("Accept-Encoding", "br;q=0, gzip;q=0, identity")]);
    assert_eq!((r.header("content-encoding"), r.body.len()), (None, full.body.len()));
    // Range may be ignored: the whole document, 200.
    let r = get(&addr, "/feeds/all.atom", &[("Range", "bytes=0-10")]);
    assert_eq!((r.status, r.body.len()), (200, full.body.len()));

    // A publish swaps what is served: new bytes, new validators; the old ETag no longer matches.
    site.drop_file("tiga.txt", &article("tiga", "Jembatan baru dibuka", "2026-11-22 08:00"));
    let r = wait_served(&addr, "/feeds/all.atom", "Jembatan baru");
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(get(&addr, "/feeds/all.atom", &[("If-None-Match", &etag)]).status, 200);
    // Two changes in quick succession (often within one second): Last-Modified still moves on,
    // so a client revalidating with If-Modified-Since alone sees the second change too.
    let lm_of = |r: &Resp| httpdate::parse_http_date(r.header("last-modified").expect("lm")).expect("date");
    site.drop_file("empat.txt", &article("empat", "Kereta tiba tepat waktu", "2026-11-22 09:00"));
    let r2 = wait_served(&addr, "/feeds/all.atom", "Kereta tiba");
    assert!(lm_of(&r2) > lm_of(&r), "Last-Modified did not move with the content");
    assert!(lm_of(&r) > lm_time);
}

#[test]
fn only_get_and_head_and_nothing_outside_the_feeds() {
    let site = site(SERVER);
    site.drop_file("satu.txt", &article("satu", "Banjir surut", "2026-11-20 09:30"));
    // A symlink planted in the output directory must not be followed by a request.
    std::fs::create_dir_all(site.path("feeds")).expect("mkdir");
    std::os::unix::fs::symlink(&site.config, site.path("feeds/leak.atom")).expect("symlink");
    let daemon = site.spawn();
    let addr = daemon.addr();
    wait_served(&addr, "/feeds/all.rss", "Banjir surut");

    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "FOO"] {
        let r = http(&addr, method, "/feeds/all.rss", &[("Content-Length", "0")]);
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method}");
    }
    let secret = std::fs::read_to_string(&site.config).expect("config");
    for target in [
        "/feeds/../siar.toml",
        "/feeds/%2e%2e/siar.toml",
        "/feeds/%2E%2E/siar.toml",
        "/feeds%2fall.rss",
        "/feeds/..%2fsiar.toml",
        "/feeds/..%2Fsiar.toml",
        "/../siar.toml",
        "/feeds/all.rss/..",
        "/feeds/./all.rss",
        "/feeds//all.rss",
        "/feeds/leak.atom",
        "/feeds/all.toml",
        "/feeds/nope.atom",
        "/feeds/ALL.rss",
        "/siar.toml",
        "/state/db",
        "/feeds/all.rss%00.atom",
        "/%252e%252e/siar.toml",
        "/feeds/%252e%252e/siar.toml",
        "/feeds/..%5csiar.toml",
        "/feeds/%c0%ae%c0%ae/siar.toml",
        "//siar.toml",
        "//feeds/all.rss",
        "/feeds/..;/siar.toml",
        "/feeds/all.rss;.atom",
        "/feeds/all/archive/../../siar.toml",
        "/feeds/all/archive/1.atom",
        "/feeds/all/archive/-1.atom",
        "/feeds/all/archive/99999999999999999999.atom",
        "http://evil.example/siar.toml",
        "/feeds/%u002e%u002e/siar.toml",
    ] {
        let r = get(&addr, target, &[]);
        assert_eq!(r.status, 404, "{target}");
        assert!(!r.text().contains("[site]") && !r.text().contains(&secret[..40]), "{target} leaked the config");
    }
    // Query strings (cache busters) do not change what a public feed is; an absolute-form target
    // is read for its path (RFC 9112 §3.2.2).
    assert_eq!(get(&addr, "/feeds/all.rss?t=123", &[]).status, 200);
    assert_eq!(get(&addr, "http://evil.example/feeds/all.rss", &[]).status, 200);

    // HTTP/1.1 without Host is malformed; HTTP/1.0 needs none.
    let raw = |req: &str| {
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s.write_all(req.as_bytes()).expect("send");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        support::parse_response(&out)
    };
    assert_eq!(raw("GET /feeds/all.rss HTTP/1.1\r\nConnection: close\r\n\r\n").status, 400);
    let r = raw("GET /feeds/all.rss HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.text().contains("Banjir surut")), (200, true));
    let r = raw("HEAD /feeds/all.rss HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.body.len()), (200, 0));

    // Oversized request heads are refused, and the server stays up.
    let big = "x".repeat(20_000);
    let mut s = TcpStream::connect(&addr).expect("connect");
    let _ = s.write_all(format!("GET /feeds/all.rss HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let status = String::from_utf8_lossy(&raw).split(' ').nth(1).map(str::to_string);
    assert!(matches!(status.as_deref(), Some("431") | None), "oversized head: {:?}", String::from_utf8_lossy(&raw));
    assert_eq!(get(&addr, "/healthz", &[]).status, 200);
}

#[test]
fn slow_clients_are_cut_off_and_idle_connections_closed_after_keep_alive() {
    let site = site("\n[server]\nlisten = \"127.0.0.1:0\"\nheader_timeout = \"1s\"\nkeep_alive = \"3s\"\n");
    let daemon = site.spawn();
    let addr = daemon.addr();
    wait_until(Duration::from_secs(20), "first publish", || get(&addr, "/feeds/all.rss", &[]).status == 200);

    // Headers started but never finished: closed after the header timeout.
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(b"GET /feeds/all.rss HTTP/1.1\r\nHost: a\r\n").expect("send");
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(800) && took < Duration::from_secs(3), "closed after {took:?}");

    // A connection that sends nothing at all: the same.
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let started = Instant::now();
    let _ = s.read_to_end(&mut buf);
    assert!(started.elapsed() < Duration::from_secs(3), "silent connection kept {:?}", started.elapsed());

    // Slowloris: 200 connections trickling header bytes; a normal client is still served at
    // once, the trickles are cut at the header timeout and the descriptors come back.
    let fds = || std::fs::read_dir(format!("/proc/{}/fd", daemon.pid())).map(|d| d.count()).unwrap_or(0);
    let baseline = fds();
    let mut slow: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(&addr).expect("connect")).collect();
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(1500) {
        for s in &mut slow {
            let _ = s.write_all(b"G");
        }
        let t = Instant::now();
        assert_eq!(get(&addr, "/feeds/all.rss", &[]).status, 200);
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(worst < Duration::from_secs(1), "a normal request took {worst:?} among slow clients");
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut b = [0u8; 64];
        let closed = matches!(s.read(&mut b), Ok(0) | Err(_)) || s.read(&mut b).is_ok_and(|n| n == 0);
        assert!(closed, "a trickling connection outlived the header timeout");
    }
    drop(slow);
    wait_until(Duration::from_secs(5), "descriptors back to the baseline", || fds() <= baseline + 2);

    // Keep-alive: idle longer than the header timeout is fine; past keep_alive it is closed.
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let request = b"HEAD /feeds/all.rss HTTP/1.1\r\nHost: a\r\n\r\n";
    let read_head = |s: &mut TcpStream| {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).unwrap_or(0) == 0 {
                return head;
            }
            head.push(byte[0]);
        }
        head
    };
    s.write_all(request).expect("send");
    assert!(read_head(&mut s).starts_with(b"HTTP/1.1 200"));
    std::thread::sleep(Duration::from_millis(1800));
    s.write_all(request).expect("send after idling");
    assert!(read_head(&mut s).starts_with(b"HTTP/1.1 200"), "idle for less than keep_alive must be served");
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_millis(2500) && idle < Duration::from_secs(6),
        "idle connection closed after {idle:?}"
    );
}

fn new_key(site: &Site, feed: &str) -> (String, String) {
    let out = site.siar(&["keys", "new", feed]);
    assert!(out.status.success(), "keys new: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let key = stdout.lines().find_map(|l| l.strip_prefix("key: ")).expect("key line").to_string();
    let line = stdout.lines().find(|l| l.starts_with("keys = ")).expect("keys line").to_string();
    (key, line)
}

#[test]
fn keyed_partner_feeds_need_a_key_and_stay_out_of_public_listings() {
    let site = site(SERVER);
    // The key is made before the feed exists: a keyed feed without keys would not load.
    let (key, line) = new_key(&site, "mitra");
    let (other_key, other_line) = new_key(&site, "mitra");
    assert_ne!(key, other_key);
    assert!(line.starts_with("keys = [\"sha256:") && !line.contains(&key), "{line}");
    let hashes = |l: &str| l.trim_start_matches("keys = [").trim_end_matches(']').to_string();
    let config = format!(
        "{BASE_CONFIG}{SERVER}metrics_listen = \"127.0.0.1:0\"\n\n[[feed]]\nname = \"mitra\"\ntitle = \"Untuk mitra\"\naccess = \"key\"\nkeys = [{}, {}]\n",
        hashes(&line),
        hashes(&other_line)
    );
    std::fs::write(&site.config, config).expect("config");
    assert!(site.siar(&["check"]).status.success());
    site.drop_file("rahasia.txt", &article("rahasia", "Laporan khusus mitra", "2026-11-20 09:30"));
    let daemon = site.spawn();
    let addr = daemon.addr();
    wait_served(&addr, "/feeds/all.atom", "Laporan khusus");

    for (what, target, headers) in [
        ("no key", "/feeds/mitra.atom".to_string(), vec![]),
        ("wrong key", "/feeds/mitra.atom?key=siar_00".to_string(), vec![]),
        ("wrong bearer", "/feeds/mitra.atom".to_string(), vec![("Authorization", "Bearer siar_nope".to_string())]),
        ("hash as key", format!("/feeds/mitra.atom?key={}", hashes(&line).trim_matches('"')), vec![]),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let r = get(&addr, &target, &headers);
        assert_eq!(r.status, 401, "{what}");
        assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{what}");
        assert!(r.header("etag").is_none() && r.header("last-modified").is_none(), "{what}: validators leak");
        assert!(!r.text().contains("Laporan") && !r.text().contains("mitra"), "{what}: {}", r.text());
    }
    let bearer = format!("Bearer {key}");
    let r = get(&addr, "/feeds/mitra.atom", &[("Authorization", &bearer)]);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Laporan khusus mitra"));
    assert!(r.header("cache-control").is_some_and(|c| c.starts_with("private")), "{:?}", r.header("cache-control"));
    let etag = r.header("etag").expect("etag").to_string();
    assert_eq!(get(&addr, "/feeds/mitra.atom", &[("Authorization", &bearer), ("If-None-Match", &etag)]).status, 304);
    // A 304 needs the key too.
    assert_eq!(get(&addr, "/feeds/mitra.atom", &[("If-None-Match", &etag)]).status, 401);
    assert_eq!(get(&addr, &format!("/feeds/mitra.json?key={other_key}"), &[]).status, 200);

    // Never on disk where a static server could hand it out, never listed.
    assert!(!site.path("feeds/mitra.atom").exists() && !site.path("feeds/mitra.rss").exists());
    let index = get(&addr, "/", &[]);
    assert_eq!(index.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(index.text().contains("<link rel=\"alternate\" type=\"application/atom+xml\""), "{}", index.text());
    assert!(index.text().contains("https://news.example.org/feeds/all.atom"));
    let opml = get(&addr, "/feeds.opml", &[]);
    assert_eq!(opml.status, 200);
    assert!(opml.text().contains("xmlUrl=\"https://news.example.org/feeds/all.rss\""), "{}", opml.text());
    for listing in [&index, &opml] {
        assert!(!listing.text().contains("mitra"), "a keyed feed is listed:\n{}", listing.text());
    }

    // Per-feed and per-key counters: on the private metrics listener (the public /metrics leaves
    // keyed feeds out: a unit test in metrics.rs).
    let metrics = get(&daemon.addr_of(true), "/metrics", &[]).text();
    assert!(metrics.contains("siar_http_requests_total{feed=\"mitra\",status=\"401\"} 5"), "{metrics}");
    let quoted = hashes(&line);
    let label = &quoted.trim_matches('"')["sha256:".len()..][..8];
    assert!(metrics.contains(&format!("siar_partner_requests_total{{feed=\"mitra\",key=\"{label}\"}} 2")), "{metrics}");
    assert!(
        metrics.contains(&format!("siar_partner_last_request_timestamp_seconds{{feed=\"mitra\",key=\"{label}\"}}"))
    );
}

#[test]
fn hubs_are_pinged_after_a_change_and_not_without_one() {
    let hub = Origin::start();
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = attempts.clone();
    // The hub fails the very first ping: siar must retry it.
    hub.handle("/hub", move |_| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 { Reply::new(503) } else { Reply::new(204) }
    });
    let site = site(&format!("{SERVER}\n[websub]\nhubs = [\"{}\"]\n", hub.url("/hub")));
    let config = std::fs::read_to_string(&site.config).expect("config").replace("0 0 1 1 *", "* * * * * *");
    std::fs::write(&site.config, config).expect("config");
    site.drop_file("satu.txt", &article("satu", "Banjir surut", "2026-11-20 09:30"));
    let daemon = site.spawn();
    let addr = daemon.addr();
    let r = wait_served(&addr, "/feeds/all.atom", "Banjir surut");
    assert!(r.text().contains(&format!("<link href=\"{}\" rel=\"hub\"/>", hub.url("/hub"))), "{}", r.text());
    assert!(r.header("link").is_some_and(|l| l.contains(&format!("<{}>; rel=\"hub\"", hub.url("/hub")))));
    assert!(get(&addr, "/feeds/all.rss", &[]).text().contains("rel=\"hub\""));
    assert!(get(&addr, "/feeds/all.json", &[]).text().contains("\"WebSub\""));

    let pinged = |url: &str| {
        let needle = format!(
            "hub.mode=publish&hub.url={}",
            url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()
        );
        hub.requests("/hub").iter().filter(|r| r.method == "POST" && String::from_utf8_lossy(&r.body) == needle).count()
    };
    let atom = "https://news.example.org/feeds/all.atom";
    // The article's publish changed every document: each URL pinged (the first attempt retried).
    wait_until(Duration::from_secs(30), "pings for the three documents", || {
        ["rss", "atom", "json"].iter().all(|e| pinged(&format!("https://news.example.org/feeds/all.{e}")) >= 1)
    });
    wait_until(Duration::from_secs(10), "the failed ping to be retried", || hub.requests("/hub").len() >= 4);
    // Let the start-up publish and the article's publish (and the retry) finish pinging.
    let mut settled = hub.requests("/hub").len();
    wait_until(Duration::from_secs(30), "pings to settle", || {
        std::thread::sleep(Duration::from_millis(1500));
        let now = hub.requests("/hub").len();
        std::mem::replace(&mut settled, now) == now
    });
    // Several publishes without a change (the schedule fires every second): no pings.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(hub.requests("/hub").len(), settled, "pinged without a change");
    assert!(daemon.log().matches("publish").count() > 0);

    let before = pinged(atom);
    site.drop_file("dua.txt", &article("dua", "Pasar ramai", "2026-11-21 10:00"));
    wait_until(Duration::from_secs(30), "a ping after the change", || pinged(atom) > before);
    let ct = hub.requests("/hub").last().and_then(|r| r.header("content-type").map(|v| v.to_vec()));
    assert_eq!(ct.as_deref(), Some(&b"application/x-www-form-urlencoded"[..]));
}

#[test]
fn readyz_turns_503_when_publishing_is_stale_and_metrics_say_why() {
    let site = site(SERVER);
    let config = std::fs::read_to_string(&site.config).expect("config").replace("0 0 1 1 *", "* * * * * *");
    std::fs::write(&site.config, config).expect("config");
    site.drop_file("satu.txt", &article("satu", "Banjir surut", "2026-11-20 09:30"));
    let daemon = site.spawn();
    let addr = daemon.addr();
    wait_served(&addr, "/feeds/all.atom", "Banjir surut");
    wait_until(Duration::from_secs(10), "ready", || get(&addr, "/readyz", &[]).status == 200);
    assert_eq!(get(&addr, "/healthz", &[]).status, 200);

    // Publishing starts failing: the RSS file's place is taken by a directory (even root cannot
    // rename over it) and a new article needs a publish.
    std::fs::remove_file(site.path("feeds/all.rss")).expect("rm");
    std::fs::create_dir(site.path("feeds/all.rss")).expect("mkdir");
    std::fs::write(site.path("feeds/all.rss/keep"), b"x").expect("write");
    site.drop_file("dua.txt", &article("dua", "Pasar ramai", "2026-11-21 10:00"));
    let mut last = None;
    wait_until(Duration::from_secs(30), "readyz to turn 503", || {
        let r = get(&addr, "/readyz", &[]);
        let stale = r.status == 503;
        last = Some(r);
        stale
    });
    let r = last.expect("response");
    let why: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON reason");
    assert!(why["reason"].as_str().is_some_and(|s| s.contains("publish")), "{why}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(get(&addr, "/healthz", &[]).status, 200, "alive, only not ready");
    // The previous documents are still served meanwhile.
    assert!(get(&addr, "/feeds/all.rss", &[]).text().contains("Banjir surut"));
    let metrics = get(&addr, "/metrics", &[]);
    assert_eq!(metrics.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = metrics.text();
    assert!(!text.contains("siar_publish_passes_total{result=\"failed\"} 0"), "{text}");
    assert!(text.contains("siar_ingest_files_total{outcome=\"stored\"} 2"), "{text}");
    assert!(text.contains("siar_articles 2"), "{text}");
    assert!(text.contains("siar_publish_age_seconds{feed=\"all\"}"), "{text}");
    assert!(text.contains("siar_http_requests_total{feed=\"all\",status=\"200\"}"), "{text}");
    assert!(text.contains("siar_http_response_bytes_total{feed=\"all\"}"), "{text}");

    // Back to normal: the directory goes, the next publish succeeds, ready again.
    std::fs::remove_dir_all(site.path("feeds/all.rss")).expect("rmdir");
    wait_until(Duration::from_secs(30), "ready again", || get(&addr, "/readyz", &[]).status == 200);
    wait_served(&addr, "/feeds/all.rss", "Pasar ramai");
}

#[test]
fn metrics_can_move_to_their_own_listener_and_a_busy_port_is_a_clear_error() {
    let site = site("\n[server]\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n");
    let daemon = site.spawn();
    let (addr, metrics) = (daemon.addr(), daemon.addr_of(true));
    assert_ne!(addr, metrics);
    assert_eq!(get(&addr, "/metrics", &[]).status, 404);
    let m = get(&metrics, "/metrics", &[]);
    assert_eq!(m.status, 200);
    assert!(m.text().contains("# TYPE siar_http_requests_total counter"));
    assert_eq!(get(&metrics, "/feeds/all.rss", &[]).status, 404);
    drop(daemon);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let busy = support::Site::with_config(&format!("{BASE_CONFIG}\n[server]\nlisten = \"127.0.0.1:{port}\"\n"));
    let out = busy.siar(&["run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("[server] listen") && err.contains(&port.to_string()), "{err}");

    for (bad, key) in [
        ("listen = \"localhost\"", "[server] listen"),
        ("base_path = \"../x\"", "[server] base_path"),
        ("cache_max_age = \"soon\"", "[server] cache_max_age"),
    ] {
        let s = support::Site::with_config(&format!("{BASE_CONFIG}\n[server]\n{bad}\n"));
        let out = s.siar(&["check"]);
        assert_eq!(out.status.code(), Some(78), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(key), "{bad}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let s = support::Site::with_config(&format!("{BASE_CONFIG}\n[[feed]]\nname = \"m\"\naccess = \"key\"\n"));
    let out = s.siar(&["check"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("siar keys new m"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn base_path_prefixes_every_route() {
    let site = site("\n[server]\nlisten = \"127.0.0.1:0\"\nbase_path = \"/berita/\"\n");
    site.drop_file("satu.txt", &article("satu", "Banjir surut", "2026-11-20 09:30"));
    let daemon = site.spawn();
    let addr = daemon.addr();
    wait_served(&addr, "/berita/feeds/all.atom", "Banjir surut");
    assert_eq!(get(&addr, "/feeds/all.atom", &[]).status, 404);
    assert_eq!(get(&addr, "/berita", &[]).status, 200);
    assert_eq!(get(&addr, "/xxxxxx", &[]).status, 404, "same length as the prefix, not the prefix");
    assert_eq!(get(&addr, "/berita/healthz", &[]).status, 200);
}

/// SIGHUP applies a [server] change: a new address is bound before the old one closes, settings
/// change on a kept listener, and a port that cannot be bound refuses the reload.
#[test]
fn sighup_moves_the_listener_and_applies_server_settings() {
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let with = |server: &str| format!("{BASE_CONFIG}\n[server]\n{server}\n");
    let site = Site::with_config(&with("listen = \"127.0.0.1:0\""));
    site.drop_file("satu.txt", &article("satu", "Banjir surut", "2026-11-20 09:30"));
    let daemon = site.spawn();
    let old = daemon.addr();
    wait_served(&old, "/feeds/all.atom", "Banjir surut");
    let reloads = |n: usize| {
        wait_until(Duration::from_secs(20), &format!("reload {n}"), || {
            let log = daemon.log();
            log.matches("reloaded ").count() + log.matches("reload refused").count() >= n
        })
    };

    // A new address, and a base path: served there at once, the old port closes.
    let moved = format!("127.0.0.1:{}", free_port());
    fs::write(&site.config, with(&format!("listen = \"{moved}\"\nbase_path = \"/siar/\""))).expect("config");
    daemon.signal("HUP");
    reloads(1);
    assert!(!daemon.log().contains("reload refused"), "{}", daemon.log());
    wait_served(&moved, "/siar/feeds/all.atom", "Banjir surut");
    assert_eq!(get(&moved, "/feeds/all.atom", &[]).status, 404, "the new base_path applies");
    wait_until(Duration::from_secs(10), "the old port to close", || TcpStream::connect(&old).is_err());

    // The same address, other settings: the listener is kept (no bind, no refused connection).
    fs::write(&site.config, with(&format!("listen = \"{moved}\"\nbase_path = \"/\""))).expect("config");
    daemon.signal("HUP");
    reloads(2);
    wait_served(&moved, "/feeds/all.atom", "Banjir surut");
    assert_eq!(get(&moved, "/siar/feeds/all.atom", &[]).status, 404);

    // A port that is taken: the reload is refused by name, the server stays where it is.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("addr");
    fs::write(&site.config, with(&format!("listen = \"{busy}\""))).expect("config");
    daemon.signal("HUP");
    reloads(3);
    let log = daemon.log();
    let refusal = &log[log.find("reload refused").expect("a refusal")..];
    assert!(refusal.contains("[server] listen") && refusal.contains(&busy.to_string()), "{refusal}");
    assert_eq!(get(&moved, "/feeds/all.atom", &[]).status, 200, "the running server stopped");
    drop(taken);

    // Metrics apart, then the two addresses swapped: siar's own listeners hold both ports, so
    // that needs a restart, and the refusal says so.
    let metrics = format!("127.0.0.1:{}", free_port());
    fs::write(&site.config, with(&format!("listen = \"{moved}\"\nmetrics_listen = \"{metrics}\""))).expect("config");
    daemon.signal("HUP");
    reloads(4);
    wait_until(Duration::from_secs(10), "metrics on their own port", || get(&metrics, "/metrics", &[]).status == 200);
    fs::write(&site.config, with(&format!("listen = \"{metrics}\"\nmetrics_listen = \"{moved}\""))).expect("config");
    daemon.signal("HUP");
    reloads(5);
    let log = daemon.log();
    let refusal = &log[log.rfind("reload refused").expect("a refusal")..];
    assert!(refusal.contains("siar's own listener") && refusal.contains("needs a restart"), "{refusal}");
    assert_eq!(get(&moved, "/feeds/all.atom", &[]).status, 200, "the running server stopped");
}

/// The server needs a file per connection: siar raises its soft open-files limit to the hard one,
/// and says so when even that is below max_connections.
#[test]
fn the_open_files_limit_is_raised_and_a_low_one_is_reported() {
    use std::os::unix::process::CommandExt;
    let with_limits = |soft: u64, hard: u64| {
        move |cmd: &mut std::process::Command| {
            // SAFETY: only setrlimit between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
    };
    let limits_of = |daemon: &Daemon| -> String {
        let text = fs::read_to_string(format!("/proc/{}/limits", daemon.pid())).expect("limits");
        let line = text.lines().find(|l| l.starts_with("Max open files")).expect("open files line");
        line.split_whitespace().skip(3).take(2).collect::<Vec<_>>().join(" ")
    };
    let mut ours = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit with a valid struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut ours) }, 0);
    let hard = ours.rlim_max.min(8192);
    if hard < 1024 {
        eprintln!("SKIPPED: the open-files test needs a hard limit of 1024 or more here (it is {hard})");
        return;
    }
    let site = site(SERVER);
    let mut daemon = site.spawn_configured(with_limits(256, hard));
    let addr = daemon.addr();
    assert_eq!(get(&addr, "/healthz", &[]).status, 200);
    assert_eq!(limits_of(&daemon), format!("{hard} {hard}"));
    assert!(!daemon.log().contains("open-files limit"), "{}", daemon.log());
    assert!(daemon.stop().success());

    let mut daemon = site.spawn_configured(with_limits(1024, 1024));
    daemon.addr();
    let log = daemon.log();
    assert!(log.contains("max_connections 4096") && log.contains("open-files limit 1024"), "{log}");
    assert!(daemon.stop().success());
}

/// newsboat, a real feed reader, reloads the served Atom feed and stores every item.
#[test]
fn newsboat_reads_every_item_of_the_served_feed() {
    if std::process::Command::new("newsboat").arg("--version").output().is_err() {
        let why = "SKIPPED: newsboat is not installed (Debian package newsboat; .ci/run installs it)";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("\n*** {why} ***\n");
        return;
    }
    let site = site(SERVER);
    let titles = ["Banjir surut di Bandung", "Pasar ramai & harga stabil", "Jembatan <baru> dibuka", "Kereta cepat"];
    for (i, t) in titles.iter().enumerate() {
        site.drop_file(&format!("a{i}.txt"), &article(&format!("a{i}"), t, &format!("2026-11-2{i} 09:30")));
    }
    let daemon: Daemon = site.spawn();
    let addr = daemon.addr();
    wait_served(&addr, "/feeds/all.atom", "Kereta cepat");
    let home = site.path("newsboat");
    std::fs::create_dir_all(&home).expect("mkdir");
    let url = format!("http://{addr}/feeds/all.atom");
    std::fs::write(home.join("urls"), format!("{url}\n")).expect("urls");
    std::fs::write(home.join("config"), "").expect("config");
    let cache = home.join("cache.db");
    for _ in 0..2 {
        // Twice: the second reload revalidates (304) and must keep every item.
        let out = std::process::Command::new("newsboat")
            .env("HOME", &home)
            .arg("-u")
            .arg(home.join("urls"))
            .arg("-c")
            .arg(&cache)
            .arg("-C")
            .arg(home.join("config"))
            .arg("-x")
            .arg("reload")
            .output()
            .expect("run newsboat");
        assert!(out.status.success(), "newsboat: {}", String::from_utf8_lossy(&out.stderr));
    }
    let script = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nfor (t,) in c.execute('select title from rss_item where feedurl=?',(sys.argv[2],)): print(t)";
    let out =
        std::process::Command::new("python3").args(["-c", script]).arg(&cache).arg(&url).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stored = String::from_utf8_lossy(&out.stdout).into_owned();
    for t in titles {
        assert!(stored.lines().any(|l| l == t), "newsboat did not store {t:?}; it has:\n{stored}");
    }
    assert_eq!(stored.lines().count(), titles.len(), "{stored}");
    let log = daemon.log();
    assert!(!log.contains("ERROR"), "{log}");
}

/// The `href` of the first `<link>` with this `rel` in an Atom document.
fn atom_link(doc: &str, rel: &str) -> Option<String> {
    doc.split("<link ").skip(1).find_map(|tag| {
        let tag = &tag[..tag.find('>')?];
        let attr = |name: &str| {
            let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
            Some(tag[start..start + tag[start..].find('"')?].to_string())
        };
        (attr("rel").as_deref() == Some(rel)).then(|| attr("href")).flatten()
    })
}

fn entry_ids(doc: &str) -> Vec<String> {
    doc.split("<entry").skip(1).filter_map(|e| Some(e[e.find("<id>")? + 4..e.find("</id>")?].to_string())).collect()
}

/// Walks from the current Atom document back through every archive page, checking each page's
/// links; returns every entry id seen and how many pages there were.
fn walk_archive(addr: &str, feed: &str) -> (Vec<String>, u32) {
    let current_url = format!("https://news.example.org/feeds/{feed}.atom");
    let current = get(addr, &format!("/feeds/{feed}.atom"), &[]).text();
    assert_eq!(atom_link(&current, "current"), None);
    let mut ids = entry_ids(&current);
    let (mut next, mut newer, mut pages) = (atom_link(&current, "prev-archive"), None::<String>, 0);
    while let Some(url) = next {
        let path = url.strip_prefix("https://news.example.org").expect("public URL of the site");
        let r = get(addr, path, &[]);
        assert_eq!(r.status, 200, "{path}");
        let page = r.text();
        assert_eq!(atom_link(&page, "self").as_deref(), Some(url.as_str()), "{path}");
        assert_eq!(atom_link(&page, "current").as_deref(), Some(current_url.as_str()), "{path}");
        assert_eq!(atom_link(&page, "next-archive"), newer, "{path}: next-archive");
        assert!(page.contains("<fh:archive"), "{path} is marked as an archive page");
        ids.extend(entry_ids(&page));
        pages += 1;
        next = atom_link(&page, "prev-archive");
        newer = Some(url);
    }
    (ids, pages)
}

#[test]
fn archives_keep_every_item_reachable_in_a_consistent_chain() {
    let site = site(&format!("{SERVER}\n[[feed]]\nname = \"kecil\"\nlimit = 3\n"));
    for i in 0..10 {
        let date = format!("2026-11-{:02} 09:00", 10 + i);
        site.drop_file(&format!("a{i}.txt"), &article(&format!("a{i}"), &format!("Kabar nomor {i}"), &date));
    }
    let daemon = site.spawn();
    let addr = daemon.addr();
    wait_until(Duration::from_secs(30), "two archive pages", || {
        atom_link(&get(&addr, "/feeds/kecil.atom", &[]).text(), "prev-archive").is_some_and(|u| u.ends_with("/2.atom"))
    });
    // Ten articles, a window of three, pages of three: two pages cut, one article waiting.
    let (ids, pages) = walk_archive(&addr, "kecil");
    assert_eq!((ids.len(), pages), (9, 2), "{ids:?}");
    let page1 = get(&addr, "/feeds/kecil/archive/1.atom", &[]);
    let page2 = get(&addr, "/feeds/kecil/archive/2.atom", &[]);
    assert_eq!(page1.header("cache-control"), Some("public, max-age=31536000, immutable"));
    assert_eq!(page2.header("cache-control"), Some("public, max-age=60"), "the newest page still gains a link");
    assert!(site.path("feeds/kecil/archive/1.rss").is_file() && site.path("feeds/kecil/archive/1.json").is_file());
    assert!(site.path("feeds/kecil/archive/1.atom.gz").is_file(), "compressed once, beside the page");

    // Two newer articles push two more out: with the one waiting, a third page.
    for i in 10..12 {
        let date = format!("2026-11-{:02} 09:00", 10 + i);
        site.drop_file(&format!("a{i}.txt"), &article(&format!("a{i}"), &format!("Kabar nomor {i}"), &date));
    }
    wait_until(Duration::from_secs(30), "a third archive page", || {
        atom_link(&get(&addr, "/feeds/kecil.atom", &[]).text(), "prev-archive").is_some_and(|u| u.ends_with("/3.atom"))
    });
    let (ids, pages) = walk_archive(&addr, "kecil");
    assert_eq!(pages, 3);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "an article on two pages: {ids:?}");
    let mut stored: Vec<String> = site.list().iter().filter_map(|a| a["id"].as_str().map(String::from)).collect();
    stored.sort();
    assert_eq!(unique, stored, "current feed + archive pages = every article");

    // Pages are final: page 1 byte for byte; page 2 keeps its entries and only gained next-archive.
    assert_eq!(get(&addr, "/feeds/kecil/archive/1.atom", &[]).body, page1.body);
    let page2_now = get(&addr, "/feeds/kecil/archive/2.atom", &[]);
    assert_eq!(entry_ids(&page2_now.text()), entry_ids(&page2.text()));
    assert_eq!(atom_link(&page2.text(), "next-archive"), None);
    assert_eq!(page2_now.header("cache-control"), Some("public, max-age=31536000, immutable"));
    let etag = page1.header("etag").expect("etag");
    assert_eq!(get(&addr, "/feeds/kecil/archive/1.atom", &[("If-None-Match", etag)]).status, 304);
    let gz = get(&addr, "/feeds/kecil/archive/1.atom", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gunzip(&gz.body), page1.body);

    // The RSS and JSON chains follow the same pages.
    let rss = get(&addr, "/feeds/kecil/archive/1.rss", &[]).text();
    assert!(rss.contains("<fh:archive") && rss.contains("rel=\"current\"") && rss.contains("archive/2.rss"), "{rss}");
    let json = |p: &str| serde_json::from_slice::<serde_json::Value>(&get(&addr, p, &[]).body).expect("json");
    assert_eq!(json("/feeds/kecil.json")["next_url"], "https://news.example.org/feeds/kecil/archive/3.json");
    assert_eq!(json("/feeds/kecil/archive/3.json")["next_url"], "https://news.example.org/feeds/kecil/archive/2.json");
    assert!(json("/feeds/kecil/archive/1.json").get("next_url").is_none());
    for missing in ["/feeds/kecil/archive/4.atom", "/feeds/kecil/archive/0.atom", "/feeds/kecil/archive/01.atom"] {
        assert_eq!(get(&addr, missing, &[]).status, 404, "{missing}");
    }
}

/// Reads one response (head, then exactly Content-Length bytes unless `head_only`) from a
/// keep-alive connection.
fn read_response(s: &mut TcpStream, head_only: bool, chunk: usize, pause: Duration) -> Resp {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).expect("read head"), 1, "connection closed mid-head");
        raw.push(byte[0]);
    }
    let mut r = support::parse_response(&raw);
    let len: usize = r.header("content-length").and_then(|v| v.parse().ok()).expect("Content-Length");
    if !head_only {
        let mut buf = vec![0u8; chunk];
        while r.body.len() < len {
            let want = chunk.min(len - r.body.len());
            let n = s.read(&mut buf[..want]).expect("read body");
            assert!(n > 0, "connection closed mid-body");
            r.body.extend_from_slice(&buf[..n]);
            std::thread::sleep(pause);
        }
    }
    r
}

#[test]
fn large_documents_arrive_whole_in_every_encoding_over_one_connection() {
    let site = site(SERVER);
    // Varied words, so even the compressed forms are large (bodies over 16 KiB go by sendfile).
    let words =
        ["banjir", "pasar", "harga", "warga", "kota", "jalan", "sekolah", "rumah", "sakit", "kereta", "bandara"];
    let mut seed = 7u64;
    for i in 0..40 {
        let mut body = String::new();
        for _ in 0..400 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            body += words[(seed >> 33) as usize % words.len()];
            body += if (seed >> 20).is_multiple_of(9) { ". " } else { " " };
            body += &((seed >> 40) % 1000).to_string();
            body.push(' ');
        }
        let text = format!("Title: Laporan {i}\nDate: 2026-11-{:02} 08:00\nSlug: laporan-{i}\n\n{body}\n", 1 + i % 27);
        site.drop_file(&format!("l{i}.txt"), text.as_bytes());
    }
    let daemon = site.spawn();
    let addr = daemon.addr();
    let full = wait_served(&addr, "/feeds/all.atom", "Laporan 39");
    let file = std::fs::read(site.path("feeds/all.atom")).expect("file");
    assert_eq!(full.body, file);
    assert!(file.len() > 200_000, "{}", file.len());

    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    for round in 0..3 {
        for (enc, head) in [("identity", false), ("gzip", false), ("br", false), ("gzip", true), ("identity", false)] {
            let method = if head { "HEAD" } else { "GET" };
            let req = format!("{method} /feeds/all.atom HTTP/1.1\r\nHost: a\r\nAccept-Encoding: {enc}\r\n\r\n");
            s.write_all(req.as_bytes()).expect("send");
            // The last round reads slowly, in small pieces, so sends are partial.
            let (chunk, pause) = if round == 2 { (4096, Duration::from_millis(1)) } else { (65536, Duration::ZERO) };
            let r = read_response(&mut s, head, chunk, pause);
            assert_eq!(r.status, 200, "{method} {enc}");
            if head {
                continue;
            }
            let body = match enc {
                "gzip" => gunzip(&r.body),
                "br" => unbrotli(&r.body),
                _ => r.body.clone(),
            };
            assert_eq!(body, file, "round {round}: {enc} body differs");
            if enc != "identity" {
                assert!(r.body.len() > 16 * 1024, "{enc}: {} bytes", r.body.len());
            }
        }
    }

    // A publish during a download: the download finishes the version it started with, whole;
    // the next request gets the new one.
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    // A small receive buffer keeps most of each response in the server's hands until read.
    let small: libc::c_int = 32 * 1024;
    // SAFETY: a valid socket and option value.
    let set = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0);
    for enc in ["identity", "gzip"] {
        let before = get(&addr, "/feeds/all.atom", &[]);
        let etag = before.header("etag").expect("etag").to_string();
        let req = format!("GET /feeds/all.atom HTTP/1.1\r\nHost: a\r\nAccept-Encoding: {enc}\r\n\r\n");
        s.write_all(req.as_bytes()).expect("send");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut byte).expect("read"), 1);
            head.push(byte[0]);
        }
        let mut first = vec![0u8; 1000];
        s.read_exact(&mut first).expect("first bytes");
        let slug = format!("baru-{enc}");
        site.drop_file(&format!("{slug}.txt"), &article(&slug, &format!("Berita baru {enc}"), "2026-11-27 23:00"));
        wait_until(Duration::from_secs(30), "the next publish", || {
            get(&addr, "/feeds/all.atom", &[]).header("etag").is_some_and(|e| e != etag)
        });
        let mut r = support::parse_response(&head);
        let len: usize = r.header("content-length").and_then(|v| v.parse().ok()).expect("length");
        let mut rest = vec![0u8; len - first.len()];
        s.read_exact(&mut rest).expect("the rest of the old version");
        r.body = [first, rest].concat();
        let body = if enc == "gzip" { gunzip(&r.body) } else { r.body.clone() };
        assert_eq!(body, before.body, "{enc}: the download changed version midway");
        assert!(get(&addr, "/feeds/all.atom", &[]).text().contains(&format!("Berita baru {enc}")));
    }
}

#[test]
fn a_slow_reader_of_a_big_feed_gets_all_of_it_past_the_keep_alive() {
    // keep_alive 1 s; a 6+ MB document read at ~3 MB/s: the download outlasts keep_alive (and
    // the kernel's buffers), and must not be cut while it progresses.
    let config = BASE_CONFIG.replace("max_size = \"64KiB\"", "max_size = \"1MiB\"");
    let site = Site::with_config(&format!("{config}\n[server]\nlisten = \"127.0.0.1:0\"\nkeep_alive = \"1s\"\n"));
    let words = ["banjir", "pasar", "harga", "warga", "kota", "jalan", "sekolah", "rumah", "kereta"];
    let mut seed = 11u64;
    for i in 0..24 {
        let mut body = String::new();
        while body.len() < 300_000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            body += words[(seed >> 33) as usize % words.len()];
            body += if (seed >> 20).is_multiple_of(11) { ".\n" } else { " " };
        }
        let text = format!("Title: Panjang {i}\nDate: 2026-11-{:02} 08:00\nSlug: panjang-{i}\n\n{body}\n", 1 + i);
        site.drop_file(&format!("p{i}.txt"), text.as_bytes());
    }
    let daemon = site.spawn();
    let addr = daemon.addr();
    wait_until(Duration::from_secs(120), "the big feed", || {
        let r = http(&addr, "HEAD", "/feeds/all.atom", &[]);
        r.status == 200
            && r.header("content-length").and_then(|v| v.parse::<usize>().ok()).is_some_and(|n| n > 6_000_000)
    });
    let file = std::fs::read(site.path("feeds/all.atom")).expect("file");
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s.write_all(b"GET /feeds/all.atom HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
    let started = Instant::now();
    let r = read_response(&mut s, false, 64 * 1024, Duration::from_millis(20));
    assert!(started.elapsed() > Duration::from_millis(1500), "the read was not slow: {:?}", started.elapsed());
    assert_eq!(r.body.len(), file.len());
    assert!(r.body == file, "the slow download differs from the file");
}

#[test]
fn a_full_server_says_so_and_reclaims_idle_connections() {
    let site = site(
        "\n[server]\nlisten = \"127.0.0.1:0\"\nmax_connections = 4\nheader_timeout = \"1s\"\nkeep_alive = \"30s\"\n",
    );
    let daemon = site.spawn();
    let addr = daemon.addr();
    wait_until(Duration::from_secs(20), "first publish", || get(&addr, "/feeds/all.rss", &[]).status == 200);
    // Four keep-alive clients take every slot and go idle.
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            s.write_all(b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                assert_eq!(s.read(&mut b).expect("read"), 1);
                head.push(b[0]);
            }
            s
        })
        .collect();
    // A fifth is told at once, not left hanging.
    let started = Instant::now();
    let r = get(&addr, "/feeds/all.rss", &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert!(started.elapsed() < Duration::from_secs(1));
    // With no slot free, idle connections get the header timeout (1 s), not keep_alive (30 s):
    // one is closed and its slot serves the next client.
    wait_until(Duration::from_secs(5), "a free slot", || get(&addr, "/feeds/all.rss", &[]).status == 200);
    let mut closed = 0;
    for s in &mut idle {
        s.set_nonblocking(true).expect("nonblocking");
        let mut b = [0u8; 16];
        closed += usize::from(matches!(s.read(&mut b), Ok(0)));
    }
    assert!(closed >= 1, "no idle connection gave up its slot");
}
