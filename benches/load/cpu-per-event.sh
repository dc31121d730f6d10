#!/usr/bin/env bash
# The service's CPU time per event, split into user and system time, and its writes per event:
# the service pinned to core 0 (in shadow mode, the decision line at info), wrk (one thread,
# unique events) and, for the Redis store, a redis-server on a unix socket pinned to core 1,
# measured for SECONDS after a 2 s warm-up. Times come from /proc/<pid>/stat, writes from
# /proc/<pid>/io.
#
#   benches/load/cpu-per-event.sh target/release/handover-receiver redis 5
#   PERF_OUT=/tmp/redis.data benches/load/cpu-per-event.sh BINARY redis 5   # with a profile
#
# With PERF_OUT, `perf record` (cpu-clock, DWARF call graphs: the release build has no frame
# pointers) samples the service while it is measured; build with CARGO_PROFILE_RELEASE_DEBUG=1
# CARGO_PROFILE_RELEASE_STRIP=false for names. A share of the samples times the CPU per event
# is microseconds per event. CONNECTIONS sets wrk's connections (256, as `--scaling`).
#
# One run says little on a shared machine: compare two binaries in alternating runs, several
# pairs, and take the median of the pairs' ratios (benches/load/NOTES.md, tenth round).
set -euo pipefail
binary=${1:?usage: $0 BINARY memory|redis [SECONDS]}
store=${2:?usage: $0 BINARY memory|redis [SECONDS]}
seconds=${3:-5}
connections=${CONNECTIONS:-256}
here=$(cd "$(dirname "$0")" && pwd)
port=$((20000 + RANDOM % 20000))
# shellcheck source=benches/load/measure-common.sh
. "$here/measure-common.sh"

settings=("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY=$key" "HANDOVER_LISTEN_ADDR=127.0.0.1:$port"
  FEATURE_USE_GENESYS_OM_HTTP_END_HANDOVER_REQUEST=false HANDOVER_END_GRACE_MS=1000
  HANDOVER_MAX_CONVERSATIONS=3000000 HANDOVER_MAX_IN_FLIGHT=4096 RUST_LOG=info)
case $store in
  memory) ;;
  redis) start_redis taskset -c 1 ;;
  *) echo "store must be memory or redis" >&2; exit 2 ;;
esac
env -i "${settings[@]}" taskset -c 0 "$binary" >/dev/null 2>&1 &
service=$!
pids+=("$service")
wait_ready "$port" 100 0.1

load() {
  GENESYS_EVENTBRIDGE_HANDOVER_API_KEY=$key WRK_RUN=$1 taskset -c 1 \
    wrk -t1 -c"$connections" -d"$2"s -s "$here/wrk-events.lua" "http://127.0.0.1:$port"
}
cpu() { awk '{print $14, $15}' "/proc/$service/stat"; }
writes() { awk '/^syscw/{print $2}' "/proc/$service/io"; }

# Each run's ids are its own (WRK_RUN), so the measured run repeats nothing of the warm-up.
load 1 2 >/dev/null
read -r user0 system0 < <(cpu)
writes0=$(writes)
if [ -n "${PERF_OUT:-}" ]; then
  perf record -F 999 --call-graph dwarf,32768 -p "$service" -o "$PERF_OUT" -- sleep "$seconds" \
    >/dev/null 2>&1 &
  perf=$!
fi
rate=$(load 2 "$seconds" | awk '/^events\/s/{print $2}')
if [ -z "$rate" ]; then
  echo "wrk reported no rate" >&2
  exit 1
fi
read -r user1 system1 < <(cpu)
writes1=$(writes)
[ -n "${PERF_OUT:-}" ] && wait "$perf"
awk -v rate="$rate" -v s="$seconds" -v hz="$(getconf CLK_TCK)" \
  -v u="$((user1 - user0))" -v k="$((system1 - system0))" -v w="$((writes1 - writes0))" 'BEGIN {
    events = rate * s
    printf "events/s %.0f  user %.1f us/event  system %.1f us/event  writes %.2f/event\n",
      rate, u / hz / events * 1e6, k / hz / events * 1e6, w / events
  }'
