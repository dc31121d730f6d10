#!/usr/bin/env bash
# Instructions per event of a handover-receiver binary, counted by callgrind: the in-memory
# store, the decision line at info, wrk (one thread, 8 connections, unique events) for 15 s
# after a 3 s warm-up. Counts are repeatable where throughput on a shared VM is not, so this is
# how a change of a few microseconds per event is compared (benches/load/NOTES.md).
#
#   benches/load/callgrind-per-event.sh target/release/handover-receiver /tmp/callgrind.out
#   callgrind_annotate --inclusive=yes /tmp/callgrind.out | less
#
# Needs valgrind and wrk. Build with CARGO_PROFILE_RELEASE_DEBUG=1
# CARGO_PROFILE_RELEASE_STRIP=false for function names. The count covers the whole process,
# background tasks included, divided by the events wrk sent.
set -euo pipefail
binary=${1:?usage: $0 BINARY OUT}
out=${2:?usage: $0 BINARY OUT}
here=$(cd "$(dirname "$0")" && pwd)
port=$((18700 + RANDOM % 200))
key=YmVuY2hrZXkwMTIzNDU2Nzg5YWJjZGU=
env -i GENESYS_EVENTBRIDGE_HANDOVER_API_KEY=$key HANDOVER_LISTEN_ADDR=127.0.0.1:$port \
  HANDOVER_MAX_CONVERSATIONS=3000000 HANDOVER_MAX_IN_FLIGHT=4096 RUST_LOG=info \
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$binary" \
  >/dev/null 2>"$out.valgrind.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  curl -s -o /dev/null "http://127.0.0.1:$port/livez" && break
  sleep 0.5
done
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
trap - EXIT
instructions=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1}')
echo "events $events  instructions $instructions  per event $((instructions / events))"
