# shellcheck shell=bash
# Sourced by cpu-per-event.sh and callgrind-per-event.sh: the API key, a scratch directory, the
# processes to stop on exit, a redis-server on a unix socket, and the wait for the service.
# The sourcing script sets `settings` (the service's environment) before `start_redis`.

# shellcheck disable=SC2034 # used by the sourcing script
key=YmVuY2hrZXkwMTIzNDU2Nzg5YWJjZGU=
dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# start_redis [COMMAND PREFIX...]: a redis-server without persistence on a unix socket in the
# scratch directory, started through the prefix if any (`taskset -c 1`), and its URL added to
# `settings` as HANDOVER_STORE.
start_redis() {
  "$@" redis-server --port 0 --save "" --appendonly no --unixsocket "$dir/redis.sock" \
    --unixsocketperm 700 --dir "$dir" >/dev/null 2>&1 &
  pids+=("$!")
  for _ in $(seq 50); do [ -S "$dir/redis.sock" ] && break; sleep 0.1; done
  if [ ! -S "$dir/redis.sock" ]; then
    echo "redis-server did not start (apt-get install redis-server)" >&2
    exit 1
  fi
  settings+=("HANDOVER_STORE=redis+unix://$dir/redis.sock")
}

# wait_ready PORT TRIES PAUSE: until the service on 127.0.0.1:PORT answers /readyz, or exit 1.
wait_ready() {
  for _ in $(seq "$2"); do
    curl -sf -o /dev/null "http://127.0.0.1:$1/readyz" && return 0
    sleep "$3"
  done
  echo "the service did not become ready on 127.0.0.1:$1" >&2
  exit 1
}
