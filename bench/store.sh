#!/usr/bin/env bash
# Store benchmark: a store of N articles (default 100,000) made by `siar run --once` on the
# shipped feed defaults (one feed "all", limit 50, archive pages), then, alternating siar with an
# older siar (SIAR_OLD, optional) on the same store, three rounds each:
#   open, clean:      `list --limit 1` after a clean close (the ledger's stamps match the files)
#   open, unclean:    the same after the clean stamp is dropped (as after a crash or a first open
#                     by this release): the store is copied aside and the copy opened first
#   verify, export, import (into an empty store), rebuild (from done/), rebuild --from (export + done/)
# usage: bench/store.sh [N]   (builds the release binary first; SIAR= to use another binary;
#        SKIP_REBUILD=1 leaves out the two rebuilds)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
[[ -n "${SIAR:-}" ]] || cargo build --release --quiet
siar=${SIAR:-$PWD/target/release/siar}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/siar.toml" <<TOML
[site]
title = "Bench"
link = "https://news.example.org/"
language = "id"
[paths]
drop = "drop"
state = "state"
output = "feeds"
[ingest]
settle = "0s"
watch = false
[publish]
schedule = "0 0 1 1 *"
[[feed]]
name = "all"
limit = 50
TOML
sed 's/^state = "state"/state = "imported"/' "$work/siar.toml" > "$work/import.toml"
python3 bench/drop_corpus.py "$work/drop" "$n" --dated
cd "$work"
t0=$(date +%s.%N)
"$siar" --config siar.toml run --once 2> build.log
t1=$(date +%s.%N)
printf 'store of %d articles made in %.1f s; %s, db %s\n' "$n" "$(echo "$t1 - $t0" | bc -l)" \
  "$(du -sh state | cut -f1)" "$(du -h state/db | cut -f1)"
python3 - "$siar" "${SIAR_OLD:-}" <<'PY'
import json, os, shutil, subprocess, sys, time
siar, old = sys.argv[1], sys.argv[2]

def run(*args, config="siar.toml", binary=None, check=True):
    t = time.perf_counter()
    p = subprocess.run([binary or siar, "--config", config, *args], capture_output=True)
    took = time.perf_counter() - t
    if check and p.returncode != 0:
        sys.exit(f"{args}: exit {p.returncode}: {p.stderr.decode()[-2000:]}")
    return took, p

def unclean():
    with open("state/siar.ledger") as f:
        ledger = json.load(f)
    ledger.pop("clean", None)
    with open("state/siar.ledger", "w") as f:
        json.dump(ledger, f)

def median(xs):
    return sorted(xs)[len(xs) // 2]

rows = {}
for _ in range(3):
    for name, binary in [("siar", siar)] + ([("old", old)] if old else []):
        run("list", "--limit", "1", binary=binary)  # settles the store (a clean close)
        rows.setdefault(f"open, clean ({name})", []).append(run("list", "--limit", "1", binary=binary)[0])
    unclean()
    rows.setdefault("open, unclean (siar)", []).append(run("list", "--limit", "1")[0])
for _ in range(3):
    rows.setdefault("verify", []).append(run("verify")[0])
    took, _ = run("export", "--output", "export.jsonl")
    rows.setdefault("export", []).append(took)
    shutil.rmtree("imported", ignore_errors=True)
    rows.setdefault("import", []).append(run("import", "export.jsonl", config="import.toml")[0])
size = os.path.getsize("export.jsonl")
rebuilds = [] if os.environ.get("SKIP_REBUILD") else [("rebuild (done/ only)", ["rebuild"]), ("rebuild --from export", ["rebuild", "--from", "export.jsonl"])]
for what, args in rebuilds:
    for d in os.listdir("."):
        if d.startswith("state.damaged-"):
            shutil.rmtree(d)
    took, p = run(*args)
    rows[what] = [took]
    print(f"{what}: {p.stdout.decode().strip().splitlines()[-2]}")
for k, v in rows.items():
    print(f"{k:28} {median(v):8.3f} s   (runs: {', '.join(f'{x:.3f}' for x in v)})")
if old:
    print(f"open, clean: siar / old = {median(rows['open, clean (siar)']) / median(rows['open, clean (old)']):.2f}")
print(f"export file: {size / 2**20:.1f} MiB")
PY
