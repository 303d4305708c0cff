#!/usr/bin/env bash
# Serving benchmark: siar's built-in server vs nginx on the same bytes, alternately in one run.
# A 50-item Atom feed (~200 KB) is published by siar; nginx serves a copy of the same file (and
# gzip -9 of it for gzip_static). wrk -t2 -c50 -d<secs> per mode: full 200, gzip 200, 304.
# usage: bench/serve.sh [rounds] [seconds]   (builds the release binary unless SIAR is set)
# needs: nginx, wrk (Debian packages)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
secs=${2:-10}
[[ -n "${SIAR:-}" ]] || cargo build --release --quiet
siar=${SIAR:-target/release/siar}
work=$(mktemp -d)
cleanup() {
  [[ -n "${siar_pid:-}" ]] && kill "$siar_pid" 2>/dev/null || true
  [[ -f "$work/nginx.pid" ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT
siar_port=18931
nginx_port=18932

cat > "$work/siar.toml" <<TOML
[site]
title = "Bench"
link = "https://news.example.org/"
language = "id"
[ingest]
settle = "0s"
[publish]
schedule = "0 0 1 1 *"
debounce = "100ms"
[server]
listen = "127.0.0.1:$siar_port"
[[feed]]
name = "all"
limit = 50
TOML
python3 - "$work/drop" <<'PY'
import os, random, sys
drop = sys.argv[1]
os.makedirs(drop)
# Varied text (a seeded word salad), so gzip does about as well as on real news (3-4x).
rng = random.Random(42)
vocab = ("pemerintah kota warga pasar harga banjir jalan sekolah rumah sakit kereta bandara pelabuhan "
         "anggaran program pelayanan publik menteri gubernur bupati wali polisi hujan musim kemarau "
         "petani nelayan pedagang mahasiswa guru dokter perawat relawan bantuan sosial pembangunan "
         "jembatan gedung taman lapangan listrik air bersih sampah lingkungan hutan sungai laut pantai "
         "wisata budaya festival pameran olahraga sepak bola bulu tangkis pemilu partai kampanye suara "
         "ekonomi inflasi rupiah ekspor impor investasi pabrik pekerja upah pajak kredit bank koperasi").split()
for i in range(50):
    paras = []
    for p in range(7):
        words = [rng.choice(vocab) if rng.random() > 0.08 else str(rng.randint(1, 99999)) for _ in range(62)]
        paras.append(" ".join(words).capitalize() + ".")
    body = "\n".join(paras)
    with open(os.path.join(drop, f"berita-{i:03}.txt"), "w") as f:
        f.write(f"Title: Berita nomor {i}\nDate: 2026-11-{1 + i % 27:02} 09:{i % 60:02}\nSlug: berita-{i:03}\n\n{body}\n")
PY
"$siar" --config "$work/siar.toml" run 2> "$work/siar.log" &
siar_pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$siar_port/feeds/all.atom" 2>/dev/null | grep -q "Berita nomor 0<" && break
  sleep 0.2
done
mkdir -p "$work/www/feeds"
cp "$work/feeds/all.atom" "$work/www/feeds/all.atom"
gzip -9 -k "$work/www/feeds/all.atom"
chmod -R a+rX "$work"  # nginx workers run as www-data
size=$(stat -c %s "$work/www/feeds/all.atom")
gzsize=$(stat -c %s "$work/www/feeds/all.atom.gz")
cat > "$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  types { application/atom+xml atom; }
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  gzip_static on;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  server { listen 127.0.0.1:$nginx_port; root $work/www; }
}
NGINX
mkdir -p "$work/tmp"
nginx -c "$work/nginx.conf" -p "$work"
sleep 0.5
url_s="http://127.0.0.1:$siar_port/feeds/all.atom"
url_n="http://127.0.0.1:$nginx_port/feeds/all.atom"
etag() { curl -sI "$1" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}'; }
etag_s=$(etag "$url_s")
etag_n=$(etag "$url_n")
# Sanity: both send the same bytes, and the modes do what they say.
cmp <(curl -s "$url_s") <(curl -s "$url_n") || { curl -si "$url_n" | head -5; cat "$work/nginx-error.log"; exit 1; }
[[ $(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag_s" "$url_s") == 304 ]]
[[ $(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag_n" "$url_n") == 304 ]]
curl -sI -H 'Accept-Encoding: gzip' "$url_s" | grep -qi 'content-encoding: gzip'
curl -sI -H 'Accept-Encoding: gzip' "$url_n" | grep -qi 'content-encoding: gzip'
echo "document: $size bytes identity; gzip: siar $(curl -s -H 'Accept-Encoding: gzip' "$url_s" | wc -c), nginx $gzsize bytes"

rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
nginx_kb() { local t=0; for p in $(pgrep -f "nginx: (master|worker)"); do t=$((t + $(rss_kb "$p"))); done; echo $t; }
run() { # name url header...
  local name=$1 url=$2; shift 2
  local args=()
  for h in "$@"; do args+=(-H "$h"); done
  wrk -t2 -c50 -d"${secs}s" "${args[@]}" "$url" | awk -v n="$name" '/Requests\/sec/{printf "%s %.0f\n", n, $2}'
}
printf "%-6s %-6s %10s %10s %7s   %s\n" round mode siar nginx ratio "RSS KiB siar (before/after) nginx"
for r in $(seq "$rounds"); do
  for mode in full gzip 304; do
    case $mode in
      full) hs=(); hn=() ;;
      gzip) hs=("Accept-Encoding: gzip"); hn=("Accept-Encoding: gzip") ;;
      304) hs=("If-None-Match: $etag_s"); hn=("If-None-Match: $etag_n") ;;
    esac
    before=$(rss_kb "$siar_pid")
    if (( r % 2 )); then
      s=$(run siar "$url_s" "${hs[@]}" | awk '{print $2}'); n=$(run nginx "$url_n" "${hn[@]}" | awk '{print $2}')
    else
      n=$(run nginx "$url_n" "${hn[@]}" | awk '{print $2}'); s=$(run siar "$url_s" "${hs[@]}" | awk '{print $2}')
    fi
    after=$(rss_kb "$siar_pid")
    printf "%-6s %-6s %10s %10s %7.2f   %s/%s %s\n" "$r" "$mode" "$s" "$n" "$(echo "$s / $n" | bc -l)" "$before" "$after" "$(nginx_kb)"
  done
done
