#!/usr/bin/env bash
# Ceremony wall time and peak memory, ours and snarkjs' side by side on the same circuit, phase 1
# and machine (docs/benchmarks.md). Needs a release build of veilwatt-params and the pinned
# snarkjs: cargo build --release -p veilwatt-params && npm ci --prefix tools/snarkjs
# Usage: tools/bench-ceremony.sh [WORKDIR] [CONTRIBUTIONS]   (defaults: a temp dir, 10)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
P="$root/target/release/veilwatt-params"
S="$root/tools/snarkjs/node_modules/.bin/snarkjs"
work=${1:-$(mktemp -d)}
n=${2:-10}
mkdir -p "$work" && cd "$work"
t() { # label, command...: prints "label  seconds  MB"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o time.txt "$@" > /dev/null 2>&1
  read -r secs kb < time.txt
  printf '%-44s %8.2f s %7.0f MB\n' "$label" "$secs" "$((kb / 1024))"
}
rm -rf c* pot.ptau
"$P" dev-ptau --out pot.ptau 2>/dev/null
t "veilwatt-params ceremony init" "$P" ceremony init --ptau pot.ptau --out c0
t "snarkjs zkey new" node "$S" zkey new c0/order.r1cs pot.ptau sj0.zkey
t "veilwatt-params ceremony contribute" "$P" ceremony contribute --in c0 --out c1 --name bench
t "snarkjs zkey contribute" node "$S" zkey contribute c0/order.zkey sj1.zkey --name=bench -e=bench
for i in $(seq 2 "$n"); do
  "$P" ceremony contribute --in "c$((i - 1))" --out "c$i" --name "p$i" > /dev/null
done
t "veilwatt-params ceremony verify ($n contributions)" "$P" ceremony verify "c$n"
t "snarkjs zkey verify ($n contributions)" node "$S" zkey verify c0/order.r1cs pot.ptau "c$n/order.zkey"
t "veilwatt-params ceremony finalize" "$P" ceremony finalize --in "c$n" --out keys
