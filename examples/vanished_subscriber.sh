#!/bin/bash
# How long the server keeps an SSE subscriber whose network vanished (no FIN, no RST).
# Run as root, inside a fresh network namespace so nothing touches the machine's own:
#   cargo build --release && unshare -n bash examples/vanished_subscriber.sh [SERVER FLAGS]
# e.g. with the defaults (heartbeat 15 s, --user-timeout 20s), or `--user-timeout 0s` for
# the kernel's own retransmission limit. A server and one SSE client (curl -N) share the
# namespace's loopback; the server's packets to the client's port are then redirected into a
# veth (tc's mirred action: this kernel has no netem), and /stats is polled once a second
# until the server drops the subscriber, for about 100 s at most. The namespace, and all it
# holds, goes away when the script ends.
set -u
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
ip link set lo up
ip link add v0 type veth peer name v1
ip link set v0 up; ip link set v1 up
BIN="$(dirname "$0")/../target/release/pushlab-server"
$BIN --bind 127.0.0.1:0 "$@" > "$OUT" 2>/dev/null &
SRV=$!
for i in $(seq 50); do [ -s "$OUT" ] && break; sleep 0.1; done
ADDR=$(head -1 "$OUT" | sed 's/listening on //')
curl -sN --local-port 45000 "http://$ADDR/sse?user=bob" > /dev/null &
CURL=$!
stat() { curl -s "http://$ADDR/stats" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["accounts"]["sse"]["connections_open"], d["timeouts"]["user_timeout"], d["accounts"]["sse"].get("dropped_stalled",0))'; }
for i in $(seq 50); do [ "$(stat | cut -d' ' -f1)" = "1" ] && break; sleep 0.1; done
echo "before: open/user_timeouts/stalled = $(stat)"
tc qdisc add dev lo root handle 1: htb default 1; tc class add dev lo parent 1: classid 1:1 htb rate 10gbit
tc filter add dev lo parent 1: protocol ip u32 match ip dport 45000 0xffff action mirred egress redirect dev v0
START=$(date +%s.%N)
for i in $(seq 100); do
  S=$(stat)
  if [ "$(echo $S | cut -d' ' -f1)" = "0" ]; then
    END=$(date +%s.%N)
    echo "subscriber dropped after $(python3 -c "print(round($END-$START,1))") s; open/user_timeouts/stalled = $S"
    break
  fi
  sleep 1
done
[ -z "${END:-}" ] && echo "still connected after about 100 s: $(stat)"
kill $CURL $SRV 2>/dev/null; wait 2>/dev/null
