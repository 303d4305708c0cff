#!/usr/bin/env bash
# Ingest benchmark: N sample-shaped articles (default 10,000) dropped at once, `siar run --once`
# until every file is in done/ with durable (flushed) commits. Prints articles/s and peak RSS.
# usage: bench/ingest.sh [N]        (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
[[ -n "${SIAR:-}" ]] || cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/siar.toml" <<TOML
[site]
title = "Bench"
link = "https://news.example.org/"
language = "id"
[ingest]
settle = "0s"
watch = false
[publish]
schedule = "0 0 1 1 *"
[[feed]]
name = "all"
TOML
python3 bench/drop_corpus.py "$work/drop" "$n"
sync
start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$work/rss" "${SIAR:-target/release/siar}" --config "$work/siar.toml" run --once 2> "$work/log"
end=$(date +%s.%N)
done_count=$(find "$work/drop/done" -type f ! -name '.*' | wc -l)
secs=$(echo "$end - $start" | bc -l)
printf 'ingest: %d articles in %.2f s = %.0f articles/s durable; peak RSS %.1f MiB; %d in done/\n' \
  "$n" "$secs" "$(echo "$n / $secs" | bc -l)" "$(echo "$(cat "$work/rss") / 1024" | bc -l)" "$done_count"
