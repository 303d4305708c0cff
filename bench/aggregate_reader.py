#!/usr/bin/env python3
"""The Python `reader` side of the aggregator benchmark (bench/aggregate.sh).

usage:
  aggregate_reader.py add    DB URLS_FILE          add every URL (one a line) to a fresh reader DB
  aggregate_reader.py update DB [WORKERS=1]        one update of every feed, then print a summary

`update` calls reader.update_feeds_iter(scheduled=False, workers=WORKERS): every feed is polled
whether due or not (reader's default scheduled=True would skip all of them on the second run,
since reader's default update interval is 1 h). Each result is counted as
  new/modified (200 with a body), not_modified (None: 304, no body), or error.
Prints one line `reader-result key=value ...` (in-process update seconds, counts, entries in DB).
Run each step as its own process under /usr/bin/time -v for wall clock and peak RSS.
"""
import sys
import time

from reader import make_reader


def add(db, urls_file):
    r = make_reader(db)
    with open(urls_file) as f:
        urls = [u.strip() for u in f if u.strip()]
    for u in urls:
        r.add_feed(u, exist_ok=True)
    r.close()
    print(f"reader-add feeds={len(urls)}")


def update(db, workers):
    r = make_reader(db)
    ok = not_modified = errors = new = modified = 0
    first_errors = []
    t0 = time.perf_counter()
    for res in r.update_feeds_iter(scheduled=False, workers=workers):
        v = res.value
        if v is None:
            not_modified += 1
        elif isinstance(v, Exception):
            errors += 1
            if len(first_errors) < 5:
                first_errors.append(f"{res.url}: {v!r}")
        else:
            ok += 1
            new += v.new
            modified += v.modified
    secs = time.perf_counter() - t0
    counts = r.get_entry_counts()
    r.close()
    print(f"reader-result workers={workers} update_s={secs:.2f} ok={ok} not_modified={not_modified} "
          f"errors={errors} new={new} modified={modified} entries={counts.total}")
    for e in first_errors:
        print(f"reader-error {e}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "add":
        add(sys.argv[2], sys.argv[3])
    elif cmd == "update":
        update(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    else:
        sys.exit(__doc__)
