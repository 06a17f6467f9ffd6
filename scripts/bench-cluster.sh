#!/bin/sh
# bench-cluster.sh: what a room across two nodes costs against one node.
#
# Runs the same synthetic load (CLUSTER_LOAD) twice, back to back:
#   1. single: one server;
#   2. cluster: two nodes on a NATS server (the module's nats-server), each
#      room's publishers on one node and its subscribers on the other
#      (loadtest -split), so every packet crosses the trunk once per room
#      and layer;
# and prints, for both, the servers' CPU per 1,000 delivered packets (both
# nodes' CPU summed), p50/p99 added latency and loss, with the ratios.
# RUNS alternates single and cluster that many times (default 1). As root,
# it runs in a loopback-only network namespace. Needs jq. Not part of make
# test or CI.
set -eu
GO=${GO:-go}
RUNS=${RUNS:-1}
LOAD=${CLUSTER_LOAD:--rooms 1 -publishers 4 -subscribers 12 -bitrate 1.5M -simulcast -warmup 10s -duration 20s}
SFU_FLAGS="-loopback -log-level warn -max-participants 0 -max-connections-per-ip 0 -max-messages-per-second 0"

if [ "${1:-}" = --inside ]; then
	out=bin/bench-cluster
	mkdir -p "$out"
	ip link set lo up 2>/dev/null || true
	stop() { for p in "$@"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
	wait_nodes() { # URL N: until the node sees N serving nodes
		for _ in $(seq 100); do
			if curl -s "$1/metrics" | grep -q "^switchboard_cluster_nodes{state=\"serving\"} $2\$"; then return 0; fi
			sleep 0.1
		done
		echo "bench-cluster: $1 never saw $2 nodes" >&2
		return 1
	}
	for i in $(seq "$RUNS"); do
		# shellcheck disable=SC2086
		bin/sfu -listen 127.0.0.1:18080 $SFU_FLAGS >"$out/single-sfu.log" 2>&1 &
		s=$!
		# shellcheck disable=SC2086
		bin/loadtest synthetic -url http://127.0.0.1:18080/ -wait-server 10s $LOAD -json "$out/single-$i.json" >"$out/single-$i.txt" 2>&1 || true
		stop $s

		dir=$(mktemp -d)
		bin/nats-server -a 127.0.0.1 -p 14222 -js -sd "$dir" >"$out/nats.log" 2>&1 &
		n=$!
		for node in a b; do
			port=18081
			[ $node = b ] && port=18082
			# shellcheck disable=SC2086
			bin/sfu -listen 127.0.0.1:$port $SFU_FLAGS -node-id $node -advertise-url http://127.0.0.1:$port/ \
				-relay-address 127.0.0.1 -cluster-nats nats://127.0.0.1:14222 >"$out/cluster-$node.log" 2>&1 &
			eval "pid_$node=\$!"
		done
		wait_nodes http://127.0.0.1:18081 2 && wait_nodes http://127.0.0.1:18082 2
		# shellcheck disable=SC2086
		bin/loadtest synthetic -url http://127.0.0.1:18081/ -sub-url http://127.0.0.1:18082/ -split \
			-metrics http://127.0.0.1:18081/metrics,http://127.0.0.1:18082/metrics -wait-server 10s $LOAD \
			-json "$out/cluster-$i.json" >"$out/cluster-$i.txt" 2>&1 || true
		# shellcheck disable=SC2154
		stop "$pid_a" "$pid_b" $n
		rm -rf "$dir"
	done
	row() { # NAME FILES...
		name=$1
		shift
		jq -rs --arg name "$name" '
			def avg(f): (map(f) | add / length);
			"\($name)\t\(avg(.server.cpu_seconds_per_1k_packets // 0) * 1000 | . * 10 | round / 10) ms\t\(avg(.server.cpu_percent) | round)%\t\(avg(.server.packets_sent / .duration_s) | round)/s\t\(avg(.latency_ms.p50) * 100 | round / 100) / \(avg(.latency_ms.p99) * 100 | round / 100) ms\t\(avg(.loss_ratio) * 10000 | round / 100)%"' "$@"
	}
	printf 'setup\tCPU per 1,000 delivered\tCPU\tdelivered\tp50 / p99 added\tloss\n'
	row single "$out"/single-*.json
	row "cluster (2 nodes)" "$out"/cluster-*.json
	s=$(jq -s 'map(.server.cpu_seconds_per_1k_packets // 0) | add / length' "$out"/single-*.json)
	c=$(jq -s 'map(.server.cpu_seconds_per_1k_packets // 0) | add / length' "$out"/cluster-*.json)
	sp=$(jq -s 'map(.latency_ms.p99) | add / length' "$out"/single-*.json)
	cp=$(jq -s 'map(.latency_ms.p99) | add / length' "$out"/cluster-*.json)
	jq -rn --argjson s "$s" --argjson c "$c" --argjson sp "$sp" --argjson cp "$cp" \
		'"cluster/single: CPU per delivered packet \($c / $s * 100 | round / 100)x; p99 added latency \(($cp - $sp) * 100 | round / 100) ms more"'
	exit 0
fi

mkdir -p bin
CGO_ENABLED=0 $GO build -o bin/sfu ./cmd/sfu
$GO build -o bin/loadtest ./cmd/loadtest
$GO build -o bin/nats-server github.com/nats-io/nats-server/v2
rm -f bin/bench-cluster/*.json
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
	exec unshare -n "$0" --inside
fi
exec "$0" --inside
