#!/usr/bin/env bash
# A sweep on a real Slurm: a one-node cluster on localhost (munged, slurmctld, slurmd, all in a temp folder), a
# 4-point sweep submitted as a job array by `numedge sweep --slurm`, aggregated, and its summaries compared
# (wall-clock times aside) with those of the same sweep run with --jobs 2. The cluster is stopped on any exit.
# Installs Debian's slurm-wlm and munge with apt-get when they are missing (as root). Exit 0: passed, 1: failed,
# 3: "skipped: <reason>" (they are missing and apt-get cannot install them). Needs a build (dist/): npm ci does it.
# Usage: bash test/slurm/run.sh [--keep]   (--keep leaves the temp folder and prints its path)
set -uo pipefail
cd "$(dirname "$0")/../.."
skip() { echo "skipped: $*"; exit 3; }
fail() { echo "FAILED: $*"; tail -n 15 "$tmp"/*.log "$tmp"/slurm/tiny/slurm-*.out 2>/dev/null; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  { [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; } || skip "slurm-wlm and munge are not installed, and this is not root with apt-get"
  echo "installing slurm-wlm and munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  timeout 180 apt-get update -qq >/dev/null 2>&1 || true # stale lists may still install; the install decides
  timeout 420 apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1 ||
    skip "apt-get could not install slurm-wlm and munge (no network or no package lists?)"
fi
[ "$(id -u)" -eq 0 ] || skip "slurmd needs root to start"
[ -f dist/scripts/sweep.js ] || { echo "FAILED: no dist/scripts/sweep.js (run npm run build first)"; exit 1; }

tmp=$(mktemp -d /tmp/numedge-slurm.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null; done
  if [ "${1:-}" = --keep ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap 'cleanup "${KEEP:-}"' EXIT
trap 'exit 1' INT TERM
[ "${1:-}" = --keep ] && KEEP=--keep

# munge: a fresh key and a private socket, so a system munged (if any) is left alone.
mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool" && chmod 700 "$tmp/munge"
head -c 1024 /dev/urandom >"$tmp/munge/munge.key" && chmod 400 "$tmp/munge/munge.key"
sock="$tmp/munge/munge.socket"
munged -F --force --key-file="$tmp/munge/munge.key" --socket="$sock" --pid-file="$tmp/munge/munged.pid" \
  --seed-file="$tmp/munge/seed" --log-file="$tmp/munged.log" >"$tmp/munged.out" 2>&1 &
pids+=($!)

export SLURM_CONF="$tmp/slurm.conf"
cat >"$SLURM_CONF" <<EOF
ClusterName=numedge-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=localhost CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.2; done
[ -S "$sock" ] || fail "munged did not start"
slurmctld -D -c -f "$SLURM_CONF" >"$tmp/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -N localhost -f "$SLURM_CONF" >"$tmp/slurmd.out" 2>&1 &
pids+=($!)
for _ in $(seq 60); do [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break; sleep 1; done
[ "$(sinfo -h -o %T 2>/dev/null)" = idle ] || fail "the node did not come up idle (sinfo: $(sinfo -h 2>&1))"
echo "one-node cluster up: $(sinfo -h -o '%P %D %T %c CPUs')"

# Four tiny grok runs (2 train fractions x 2 seeds), as a job array at most 2 at once, then as 2 local processes.
cat >"$tmp/tiny.json" <<'EOF'
{ "name": "tiny", "script": "grok", "flags": { "arms": "perp", "steps": 30, "p": 11, "hidden": "8" },
  "grid": { "frac": [0.5, 0.7] }, "seeds": [0, 1], "slurm": { "time": "00:05:00" } }
EOF
sub=$(node bin/numedge.mjs sweep "$tmp/tiny.json" --out "$tmp/slurm" --slurm --jobs 2) || fail "numedge sweep --slurm: $sub"
echo "$sub"
job=$(grep -oE 'submitted Slurm job [0-9]+' <<<"$sub" | grep -oE '[0-9]+$') || fail "no job id in: $sub"
grep -q -- '--array=0-3%2' <<<"$sub" || fail "expected --array=0-3%2 in: $sub"
for _ in $(seq 180); do [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break; sleep 1; done
[ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && echo "job $job finished" || fail "job $job still queued after 180s: $(squeue -h -j "$job")"
n=$(ls "$tmp"/slurm/tiny/*/summary.json 2>/dev/null | wc -l)
[ "$n" -eq 4 ] || fail "the job array wrote $n of 4 summaries"

node bin/numedge.mjs sweep "$tmp/tiny.json" --out "$tmp/local" --jobs 2 >/dev/null || fail "numedge sweep --jobs 2"
for d in slurm local; do
  node bin/numedge.mjs aggregate "$tmp/$d/tiny" --metric finalTestAcc >"$tmp/$d.txt" || fail "numedge aggregate $d"
done
cat "$tmp/slurm.txt"
grep -q '^missing: none$' "$tmp/slurm.txt" && grep -q '^failed: none$' "$tmp/slurm.txt" || fail "aggregate lists missing or failed points"
diff <(head -n -1 "$tmp/slurm.txt") <(head -n -1 "$tmp/local.txt") || fail "the aggregated tables differ"
node --input-type=module -e '
import { readdirSync, readFileSync } from "node:fs";
const { withoutWallClock } = await import(`${process.cwd()}/dist/index.js`);
const [a, b] = process.argv.slice(1);
const read = (d, id) => JSON.stringify(withoutWallClock(JSON.parse(readFileSync(`${d}/${id}/summary.json`, "utf8"))));
const ids = readdirSync(a).filter((f) => f.includes("seed="));
const differ = ids.filter((id) => read(a, id) !== read(b, id));
console.log(`${ids.length} summaries compared, wall-clock aside: ${differ.length ? `differ: ${differ.join(", ")}` : "identical"}`);
process.exit(ids.length === 4 && differ.length === 0 ? 0 : 1);
' "$tmp/slurm/tiny" "$tmp/local/tiny" || fail "Slurm and --jobs 2 summaries differ"
echo "ok  slurm: a 4-task job array through numedge sweep --slurm gives the summaries of --jobs 2"
