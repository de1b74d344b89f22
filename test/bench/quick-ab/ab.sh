#!/bin/bash
# Quick before/after A/B of the whole gateway, side by side in one run (until test/bench/gateway.ts lands):
#   npm run build && test/bench/quick-ab/ab.sh BEFORE_CHECKOUT [ROUNDS] [SECONDS] [CONCURRENCY]
# BEFORE_CHECKOUT is another checkout of geogate, built (dist/) and with node_modules. Each proxy (bare
# node:http + undici, before, after) is pinned to core 0; wrk, the mock backend and a private redis-server on
# core 1. Rounds alternate the order. Prints req/s, p50/p99 and CPU µs per request (/proc, user+system).
# Needs wrk and redis-server on the PATH.
set -u
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../../.." && pwd)
BEFORE=$1; ROUNDS=${2:-6}; DUR=${3:-4}; C=${4:-32}
WORK=$(mktemp -d); PIDS=()
cleanup () { kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
taskset -c 1 redis-server --port 28379 --save '' --appendonly no > /dev/null & PIDS+=($!)
taskset -c 1 node "$HERE/mock.mjs" 28000 & PIDS+=($!)
(cd "$ROOT" && taskset -c 0 node "$HERE/bare.mjs" 28100 28000) & PIDS+=($!); BARE=$!
node -e "import('$HERE/config.mjs').then(m=>{m.write('$WORK/before.json',{port:28201,adminPort:28202,backend:'http://127.0.0.1:28000',dir:'$WORK/before'});m.write('$WORK/after.json',{port:28301,adminPort:28302,backend:'http://127.0.0.1:28000',dir:'$WORK/after'})})"
sleep 1
taskset -c 0 node "$BEFORE/dist/cli/index.js" serve --config "$WORK/before.json" > "$WORK/before.log" 2>&1 & PIDS+=($!); GB=$!
taskset -c 0 node "$ROOT/dist/cli/index.js" serve --config "$WORK/after.json" --workers 1 > "$WORK/after.log" 2>&1 & PIDS+=($!); GN=$!
for i in $(seq 150); do grep -aq "geogate listening" "$WORK/before.log" && grep -aq "geogate listening" "$WORK/after.log" && break; sleep 0.2; done
for p in 28100 28201 28301; do taskset -c 1 wrk -t1 -c"$C" -d2s -s "$HERE/post.lua" "http://127.0.0.1:$p/v1/chat/completions" > /dev/null; done
cpu () { local s=0; for p in $1 $(pgrep -P "$1"); do s=$((s + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $s; }
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) -eq 0 ]; then ORDER="after:28301:$GN before:28201:$GB bare:28100:$BARE"; else ORDER="bare:28100:$BARE before:28201:$GB after:28301:$GN"; fi
  for pair in $ORDER; do
    IFS=: read -r name port pid <<< "$pair"
    c0=$(cpu "$pid")
    out=$(taskset -c 1 wrk -t1 -c"$C" -d"${DUR}s" --latency -s "$HERE/post.lua" "http://127.0.0.1:$port/v1/chat/completions")
    c1=$(cpu "$pid")
    rps=$(echo "$out" | awk '/Requests\/sec/{print $2}'); reqs=$(echo "$out" | awk '/requests in/{print $1}')
    p50=$(echo "$out" | awk '/ 50%/{print $2}'); p99=$(echo "$out" | awk '/ 99%/{print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/{print $5}')
    us=$(awk -v a="$c0" -v b="$c1" -v n="$reqs" 'BEGIN{printf "%.0f", (b-a)*10000/n}')
    echo "round $r c=$C $name rps=$rps p50=$p50 p99=$p99 cpu_us/req=$us non2xx=${non2xx:-0}"
  done
done
echo "degraded limit decisions (before/after): $(grep -ac degraded "$WORK/before.log")/$(grep -ac degraded "$WORK/after.log")"
