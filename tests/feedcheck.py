"""Reads the feeds siar wrote the way feed readers do (feedparser) and compares them with the store.

usage: feedcheck.py FEEDS_DIR FEED_NAME ARTICLES.json
ARTICLES.json is `siar list --json` output for exactly the articles the feed holds, newest first.
Exits non-zero on any bozo document or any title/id/link/date/author that differs from the store.
"""
import calendar
import datetime
import html
import json
import os
import re
import sys

import feedparser


def void_tags(html_text):
    """feedparser writes void elements as `<img ... />`; the store has `<img ...>`."""
    return re.sub(r"\s*/>", ">", html_text) if html_text is not None else None


def epoch(rfc3339):
    return int(datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp())


def parsed_epoch(struct):
    return calendar.timegm(struct)


def main():
    feeds_dir, name, articles_path = sys.argv[1:4]
    with open(articles_path, encoding="utf-8") as f:
        articles = json.load(f)
    problems = []

    for ext in ("rss", "atom"):
        path = os.path.join(feeds_dir, f"{name}.{ext}")
        d = feedparser.parse(path)
        if d.bozo:
            problems.append(f"{path}: bozo: {d.bozo_exception!r}")
            continue
        if len(d.entries) != len(articles):
            problems.append(f"{path}: {len(d.entries)} entries, store has {len(articles)}")
            continue
        for i, (e, a) in enumerate(zip(d.entries, articles)):
            where = f"{path} entry {i} ({a['key']})"
            title = e.get("title")
            if e.get("title_detail", {}).get("type") == "text/html":
                title = html.unescape(title)  # escaped HTML is how Atom carries markup-like text
            checks = [
                ("id", e.get("id"), a["id"]),
                ("title", title, a["title"]),
                ("link", e.get("link"), a["link"]),
                ("published", parsed_epoch(e.published_parsed) if e.get("published_parsed") else None, epoch(a["published"])),
                ("authors", [x.get("name") for x in e.get("authors", [])], a["authors"]),
            ]
            if ext == "atom":
                checks.append(("updated", parsed_epoch(e.updated_parsed), epoch(a["updated"])))
                content = e.content[0].value if e.get("content") else None
                checks.append(("content", void_tags(content), void_tags(a["content_html"])))
            for field, got, want in checks:
                if got != want:
                    problems.append(f"{where}: {field} is {got!r}, store has {want!r}")

    path = os.path.join(feeds_dir, f"{name}.json")
    with open(path, encoding="utf-8") as f:
        jf = json.load(f)
    if jf.get("version") != "https://jsonfeed.org/version/1.1":
        problems.append(f"{path}: version {jf.get('version')!r}")
    items = jf.get("items", [])
    if [i["id"] for i in items] != [a["id"] for a in articles]:
        problems.append(f"{path}: ids differ from the store")
    for i, a in zip(items, articles):
        if i["title"] != a["title"] or epoch(i["date_published"]) != epoch(a["published"]) or epoch(i["date_modified"]) != epoch(a["updated"]):
            problems.append(f"{path}: item {a['key']} differs from the store")

    for p in problems:
        print(p)
    print(f"feedcheck: {len(articles)} articles, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
