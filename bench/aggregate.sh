#!/usr/bin/env bash
# Aggregator benchmark: siar vs the Python `reader` library polling N feeds (default 1,000; half
# RSS 2.0, half Atom 1.0, 20-100 items, ~140 KB each) served by nginx on loopback.
# For each round (fresh state every time), in alternation:
#   reader  (update_feeds, workers=READER_WORKERS): first update (all 200), second (all 304)
#   siar    for each CONFIG: `run --once` twice on the same state (all 200, then all 304)
# Every step is its own process under /usr/bin/time -v (wall clock, peak RSS).
# siar's statuses are counted from `siar sources --json`; reader's from update_feeds_iter results.
#
# usage: bench/aggregate.sh [ROUNDS]        (default 2)
# env:   SIAR=path/to/siar   release binary (default: cargo build --release here, target/release/siar)
#        WORK=/tmp/siar-aggregate-bench   corpus, nginx, states and logs (corpus is reused if present)
#        N=1000  PORT=18080  VENV=/tmp/bench-venv (created with `pip install reader` if missing)
#        CONFIGS="single:8 distinct:8 distinct:32"   siar runs: hosts (single = all on 127.0.0.1,
#            distinct = one loopback address per source, 127.0.1.1 ...) : [fetch] concurrency
#        READER_WORKERS="1"   reader runs (1 = reader's default, sequential)
# needs: nginx (Debian package nginx), python3, /usr/bin/time (package time)
# Output: one line per step, and a summary table at the end (also in $WORK/results.tsv).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
rounds=${1:-2}
N=${N:-1000}
PORT=${PORT:-18080}
WORK=${WORK:-/tmp/siar-aggregate-bench}
VENV=${VENV:-/tmp/bench-venv}
CONFIGS=${CONFIGS:-"single:8 distinct:8 distinct:32"}
READER_WORKERS=${READER_WORKERS:-1}
if [[ -z "${SIAR:-}" ]]; then
  (cd "$repo" && cargo build --release --quiet)
  SIAR=$repo/target/release/siar
fi
mkdir -p "$WORK"
results=$WORK/results.tsv
: > "$results"

# --- corpus -------------------------------------------------------------------------------------
if [[ ! -f $WORK/corpus/feeds/s$(printf %04d "$N").xml ]]; then
  python3 "$here/aggregate_corpus.py" "$WORK/corpus" "$N"
fi

# --- nginx on loopback --------------------------------------------------------------------------
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
    server {
        listen 0.0.0.0:$PORT;   # every 127.x.y.z reaches it: distinct addresses = distinct hosts
        root $WORK/corpus;
        etag on;
    }
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2> "$WORK/nginx/stderr" &
nginx_pid=$!
trap 'kill $nginx_pid 2>/dev/null; wait $nginx_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fso /dev/null "http://127.0.0.1:$PORT/feeds/s0001.xml" && break; sleep 0.1; done
etag=$(curl -fsI "http://127.0.0.1:$PORT/feeds/s0001.xml" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
code=$(curl -so /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "http://127.0.0.1:$PORT/feeds/s0001.xml")
echo "nginx on :$PORT (pid $nginx_pid): ETag $etag, conditional GET -> $code"
[[ $code == 304 ]] || { echo "nginx does not answer 304" >&2; exit 1; }

# --- reader venv --------------------------------------------------------------------------------
if [[ ! -x $VENV/bin/python ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q reader sgmllib3k   # reader 3.26 vendors a feedparser that imports sgmllib
fi
echo "reader $("$VENV/bin/python" -c 'import reader; print(reader.__version__)'), siar $SIAR"

url() { # url INDEX MODE
  local i=$1
  if [[ $2 == single ]]; then
    printf 'http://127.0.0.1:%s/feeds/s%04d.xml' "$PORT" "$i"
  else
    printf 'http://127.0.%d.%d:%s/feeds/s%04d.xml' $(((i - 1) / 250 + 1)) $(((i - 1) % 250 + 1)) "$PORT" "$i"
  fi
}

# timed LOG CMD...: runs CMD under /usr/bin/time -v; sets $wall (s) and $rss (MiB)
timed() {
  local log=$1; shift
  /usr/bin/time -v -o "$log.time" "$@" > "$log.out" 2> "$log.err" || { echo "FAILED: $* (see $log.*)" >&2; tail -5 "$log.err" >&2; }
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.2f", s}' "$log.time")
  rss=$(awk -F': ' '/Maximum resident set size/{printf "%.1f", $2/1024}' "$log.time")
  cpu=$(awk -F': ' '/User time/{u=$2} /System time/{s=$2} END{printf "%.1f", u+s}' "$log.time")
}

run_reader() { # round workers
  local r=$1 w=$2 dir=$WORK/reader-w$w-r$1
  rm -rf "$dir"; mkdir -p "$dir"
  for i in $(seq "$N"); do url "$i" single; echo; done > "$dir/urls"
  "$VENV/bin/python" "$here/aggregate_reader.py" add "$dir/db.sqlite" "$dir/urls" > /dev/null
  local line=()
  for pass in 1 2; do
    timed "$dir/pass$pass" "$VENV/bin/python" "$here/aggregate_reader.py" update "$dir/db.sqlite" "$w"
    local res; res=$(grep '^reader-result' "$dir/pass$pass.out" | sed 's/^reader-result //')
    echo "round $r reader workers=$w pass $pass: wall ${wall}s cpu ${cpu}s rss ${rss}MiB  $res"
    grep '^reader-error' "$dir/pass$pass.out" | head -3 || true
    line+=("$wall" "$rss" "$(sed -n 's/.*ok=\([0-9]*\) not_modified=\([0-9]*\) errors=\([0-9]*\).*entries=\([0-9]*\).*/\1 ok, \2 304, \3 err|\4/p' <<< "$res")")
  done
  printf 'reader workers=%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$r" "${line[0]}" "${line[3]}" "${line[1]}" "${line[4]}" "${line[2]}" "${line[5]}" >> "$results"
}

run_siar() { # round mode concurrency
  local r=$1 mode=$2 c=$3 dir=$WORK/siar-$2-c$3-r$1
  rm -rf "$dir"; mkdir -p "$dir"
  {
    cat <<TOML
[site]
title = "Bench"
link = "https://news.example.org/"
[paths]
drop = "drop"
state = "state"
output = "feeds"
[publish]
schedule = "0 0 1 1 *"
[fetch]
every = "30m"
timeout = "20s"
max_body = "10MiB"
concurrency = $c
allow_private = true
[[feed]]
name = "all"
limit = 50
TOML
    for i in $(seq "$N"); do printf '[[source]]\nname = "s%04d"\nurl = "%s"\n' "$i" "$(url "$i" "$mode")"; done
  } > "$dir/siar.toml"
  local line=()
  for pass in 1 2; do
    RUST_LOG=${RUST_LOG:-warn} timed "$dir/pass$pass" "$SIAR" --config "$dir/siar.toml" run --once
    "$SIAR" --config "$dir/siar.toml" sources --json > "$dir/sources$pass.json"
    local res; res=$(python3 - "$dir/sources$pass.json" <<'PY'
import collections, json, sys
s = json.load(open(sys.argv[1]))
st = collections.Counter((x["state"] or {}).get("status", "never polled") for x in s)
items = sum(x["items"] for x in s)
errs = [f'{x["name"]}: {x["state"]["detail"]}' for x in s if x["state"] and x["state"]["status"] == "error"]
print(", ".join(f"{v} {k}" for k, v in sorted(st.items())) + f"|{items}")
for e in errs[:3]:
    print("  error " + e)
PY
)
    echo "round $r siar $mode c=$c pass $pass: wall ${wall}s cpu ${cpu}s rss ${rss}MiB  statuses: ${res%%|*}; items ${res#*|}"
    local warns; warns=$(grep -c . "$dir/pass$pass.err" || true)
    [[ $warns == 0 ]] || echo "  ($warns log lines on stderr, first: $(head -c 300 "$dir/pass$pass.err" | head -1))"
    line+=("$wall" "$rss" "$(head -1 <<< "$res")")
  done
  printf 'siar %s c=%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$c" "$r" "${line[0]}" "${line[3]}" "${line[1]}" "${line[4]}" "${line[2]}" "${line[5]}" >> "$results"
}

for r in $(seq "$rounds"); do
  for w in $READER_WORKERS; do run_reader "$r" "$w"; done
  for cfg in $CONFIGS; do run_siar "$r" "${cfg%%:*}" "${cfg##*:}"; done
done

echo
echo "| run | round | 1st poll s | 304 poll s | 1st RSS MiB | 304 RSS MiB | 1st statuses / items | 304 statuses / items |"
echo "|---|---|---|---|---|---|---|---|"
awk -F'\t' '{gsub(/\|/, " / ", $7); gsub(/\|/, " / ", $8); printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8}' "$results"
