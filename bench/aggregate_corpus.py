#!/usr/bin/env python3
"""Generate the aggregator benchmark corpus: N feed files (half RSS 2.0, half Atom 1.0),
20-100 items each (seeded), padded with HTML paragraphs to ~TARGET bytes per file.

usage: bench/aggregate_corpus.py OUTDIR [N=1000] [TARGET_BYTES=140000] [SEED=42]
Writes OUTDIR/feeds/sNNNN.xml (sources with even index are RSS, odd are Atom).
Deterministic: same arguments -> byte-identical files.
"""
import datetime as dt
import os
import random
import sys
from xml.sax.saxutils import escape

WORDS = ("pemerintah kota program warga anggaran jadwal pelaksanaan kebijakan tanggapan "
         "council budget transit school harbour election market rainfall bridge hospital "
         "minister report survey energy water farmers exports museum festival court ruling "
         "police traffic investment housing university research climate league stadium").split()


def sentence(rng):
    n = rng.randint(8, 18)
    s = " ".join(rng.choice(WORDS) for _ in range(n))
    return s[0].upper() + s[1:] + rng.choice([".", ".", ".", "?", "!"])


def paragraph(rng):
    body = " ".join(sentence(rng) for _ in range(rng.randint(3, 6)))
    # a little inline markup and an entity, as real feeds have
    w = rng.choice(WORDS)
    body = body.replace(f" {w} ", f" <em>{w}</em> &amp; ", 1)
    if rng.random() < 0.3:
        body += f' <a href="https://example.org/ref/{rng.randint(1, 10**6)}">More</a>'
    return f"<p>{body}</p>"


def content(rng, size):
    out, n = [], 0
    while True:
        p = paragraph(rng)
        if out and n + len(p) > size:
            break
        out.append(p)
        n += len(p) + 1
    return "\n".join(out)


def make(idx, target, seed):
    rng = random.Random(seed * 100003 + idx)
    name = f"s{idx:04d}"
    nitems = rng.randint(20, 100)
    host = f"outlet{idx:04d}.example.com"
    base = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    atom = idx % 2 == 1
    # per-item escaped size budget (escaping adds ~12%, headers ~350 B/item)
    per_item = max(300, int((target - 800) / nitems) - 430)
    raw_budget = int(per_item / 1.10) + 320  # paragraphs stop short by ~half a paragraph
    items = []
    for i in range(nitems):
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9))).title()
        when = base - dt.timedelta(minutes=37 * i + rng.randint(0, 30), seconds=rng.randint(0, 59))
        link = f"https://{host}/news/{2024}/{i:03d}-{title.lower().replace(' ', '-')}"
        guid = f"urn:uuid:{rng.getrandbits(128):032x}"
        html = content(rng, raw_budget)
        summary = escape(sentence(rng))
        if atom:
            items.append(
                f"<entry>\n<title>{escape(title)}</title>\n<id>{guid}</id>\n"
                f'<link rel="alternate" type="text/html" href="{escape(link)}"/>\n'
                f"<updated>{when.isoformat().replace('+00:00', 'Z')}</updated>\n"
                f"<author><name>Reporter {rng.randint(1, 40)}</name></author>\n"
                f"<summary>{summary}</summary>\n"
                f'<content type="html">{escape(html)}</content>\n</entry>\n')
        else:
            items.append(
                f"<item>\n<title>{escape(title)}</title>\n<link>{escape(link)}</link>\n"
                f'<guid isPermaLink="false">{guid}</guid>\n'
                f"<pubDate>{when.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>\n"
                f"<author>reporter{rng.randint(1, 40)}@{host} (Reporter)</author>\n"
                f"<description>{escape(html)}</description>\n</item>\n")
    now = base.strftime('%a, %d %b %Y %H:%M:%S +0000')
    if atom:
        head = ('<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n'
                f"<title>Outlet {idx:04d}</title>\n<id>https://{host}/</id>\n"
                f'<link rel="alternate" href="https://{host}/"/>\n'
                f'<link rel="self" href="https://{host}/atom.xml"/>\n'
                f"<updated>{base.isoformat().replace('+00:00', 'Z')}</updated>\n"
                f"<subtitle>News from outlet {idx}</subtitle>\n")
        tail = "</feed>\n"
    else:
        head = ('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0">\n<channel>\n'
                f"<title>Outlet {idx:04d}</title>\n<link>https://{host}/</link>\n"
                f"<description>News from outlet {idx}</description>\n<language>en</language>\n"
                f"<lastBuildDate>{now}</lastBuildDate>\n")
        tail = "</channel>\n</rss>\n"
    return name, nitems, head + "".join(items) + tail


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    target = int(sys.argv[3]) if len(sys.argv) > 3 else 140_000
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 42
    os.makedirs(os.path.join(out, "feeds"), exist_ok=True)
    total_items = total_bytes = 0
    for idx in range(1, n + 1):
        name, nitems, text = make(idx, target, seed)
        data = text.encode()
        with open(os.path.join(out, "feeds", name + ".xml"), "wb") as f:
            f.write(data)
        total_items += nitems
        total_bytes += len(data)
    print(f"corpus: {n} feeds, {total_items} items, {total_bytes / n / 1000:.1f} KB avg, "
          f"{total_bytes / 1e6:.1f} MB total -> {out}/feeds")


if __name__ == "__main__":
    main()
