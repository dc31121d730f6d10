#!/usr/bin/env bash
# Instructions per event of a handover-receiver binary, counted by callgrind: the in-memory
# store (or, with `redis`, a redis-server on a unix socket), the decision line at info, wrk (one thread, 8 connections, unique events) for 15 s
# after a 3 s warm-up. Counts are repeatable where throughput on a shared VM is not, so this is
# how a change of a few microseconds per event is compared (benches/load/NOTES.md).
#
#   benches/load/callgrind-per-event.sh target/release/handover-receiver /tmp/callgrind.out
#   benches/load/callgrind-per-event.sh target/release/handover-receiver /tmp/callgrind.out redis
#   callgrind_annotate --inclusive=yes /tmp/callgrind.out | less
#
# Needs valgrind and wrk. Build with CARGO_PROFILE_RELEASE_DEBUG=1
# CARGO_PROFILE_RELEASE_STRIP=false for function names. The count covers the whole process,
# background tasks included, divided by the events wrk sent. Kernel time is not counted: on
# Redis, compare system calls per event as well (cpu-per-event.sh prints writes per event).
set -euo pipefail
usage="usage: $0 BINARY OUT [memory|redis]"
binary=${1:?$usage}
out=${2:?$usage}
store=${3:-memory}
here=$(cd "$(dirname "$0")" && pwd)
port=$((18700 + RANDOM % 200))
# shellcheck source=benches/load/measure-common.sh
. "$here/measure-common.sh"
settings=("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY=$key" "HANDOVER_LISTEN_ADDR=127.0.0.1:$port"
  HANDOVER_MAX_CONVERSATIONS=3000000 HANDOVER_MAX_IN_FLIGHT=4096 RUST_LOG=info)
case $store in
  memory) ;;
  redis)
    # shellcheck disable=SC2119 # no prefix: redis-server runs unpinned, as the service does
    start_redis
    ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
env -i "${settings[@]}" \
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$binary" \
  >/dev/null 2>"$out.valgrind.log" &
pid=$!
pids+=("$pid")
wait_ready "$port" 120 0.5
load() {
  GENESYS_EVENTBRIDGE_HANDOVER_API_KEY=$key wrk -t1 -c8 -d"$1" -s "$here/wrk-events.lua" \
    "http://127.0.0.1:$port"
}
load 3s >/dev/null
callgrind_control -i on $pid >/dev/null 2>&1
events=$(load 15s | awk '/ requests in /{print $1}')
callgrind_control -i off $pid >/dev/null 2>&1
kill $pid
wait $pid 2>/dev/null || true
instructions=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1}')
echo "events $events  instructions $instructions  per event $((instructions / events))"
