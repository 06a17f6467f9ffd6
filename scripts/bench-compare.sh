#!/bin/sh
# bench-compare.sh BASE [HEAD]: is HEAD slower than BASE at forwarding?
#
# Builds both versions (BASE, and HEAD when given, in temporary git
# worktrees; without HEAD, the working tree as it is), then:
#   1. runs the forwarding benchmarks of ./sfu/ and ./rtc/ (-bench
#      'Forward|Fanout'), COUNT times each, base and head interleaved so that
#      the machine's noise hits both alike, and prints benchstat's comparison;
#   2. runs a short synthetic load (COMPARE_LOAD) against each server binary,
#      base, head, base, head, with the head's load tool for all four, and
#      prints each run and the ratio head/base of the server's CPU µs per
#      forwarded packet and of the p99 added latency (means of the runs).
# Run as root, the loads run in a loopback-only network namespace.
#
# Environment: GO (default go), COUNT (default 6), BENCH (default
# 'Forward|Fanout'), COMPARE_LOAD (the synthetic flags), LOADS (runs per
# version, default 2). Needs jq for the ratios. Not part of make test or CI.
set -eu

# --load SFU LOADTEST JSON: one server and one load, in the namespace we are in.
if [ "${1:-}" = --load ]; then
	sfu=$2 loadtest=$3 json=$4
	shift 4
	"$sfu" -listen 127.0.0.1:18090 -loopback -log-level warn \
		-max-participants 0 -max-connections-per-ip 0 -max-messages-per-second 0 >"$json.sfu.log" 2>&1 &
	pid=$!
	rc=0
	"$loadtest" synthetic -url http://127.0.0.1:18090/ -wait-server 10s "$@" -json "$json" >"$json.txt" 2>&1 || rc=$?
	kill "$pid"
	wait "$pid" || true
	exit "$rc"
fi

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 BASE [HEAD]   (commits; HEAD defaults to the working tree)" >&2
	exit 2
fi
GO=${GO:-go}
COUNT=${COUNT:-6}
BENCH=${BENCH:-Forward|Fanout}
LOADS=${LOADS:-2}
COMPARE_LOAD=${COMPARE_LOAD:--rooms 1 -publishers 4 -subscribers 12 -bitrate 1.5M -simulcast -warmup 5s -duration 15s}
root=$(git rev-parse --show-toplevel)
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
base_rev=$(git rev-parse --short "$1^{commit}")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-compare.XXXXXX")
worktrees=""
cleanup() {
	for w in $worktrees; do git -C "$root" worktree remove --force "$w" >/dev/null 2>&1 || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

git -C "$root" worktree add --detach -q "$tmp/src-base" "$base_rev"
worktrees="$tmp/src-base"
if [ $# -eq 2 ]; then
	head_rev=$(git rev-parse --short "$2^{commit}")
	git -C "$root" worktree add --detach -q "$tmp/src-head" "$head_rev"
	worktrees="$worktrees $tmp/src-head"
	head_src=$tmp/src-head
else
	head_rev="working tree"
	head_src=$root
fi
echo "base: $base_rev   head: $head_rev"

# Each version's server, without -race as make bench builds it, and its
# benchmark binaries, built once so that the runs measure no compiling.
for v in base head; do
	src=$tmp/src-base
	[ $v = head ] && src=$head_src
	mkdir -p "$tmp/$v"
	echo "building $v"
	(cd "$src" && CGO_ENABLED=0 "$GO" build -o "$tmp/$v/sfu" ./cmd/sfu &&
		"$GO" test -c -o "$tmp/$v/sfu.test" ./sfu/ &&
		"$GO" test -c -o "$tmp/$v/rtc.test" ./rtc/)
done
# One load tool for both, so that only the server differs.
(cd "$head_src" && "$GO" build -o "$tmp/loadtest" ./cmd/loadtest)

benchstat_cmd() {
	if command -v benchstat >/dev/null; then
		benchstat "$@"
	elif [ -x "$("$GO" env GOPATH)/bin/benchstat" ]; then
		"$("$GO" env GOPATH)/bin/benchstat" "$@"
	else
		"$GO" run golang.org/x/perf/cmd/benchstat@latest "$@"
	fi
}

echo "benchmarks '$BENCH' in ./sfu/ and ./rtc/, $COUNT runs each, interleaved"
for i in $(seq "$COUNT"); do
	for v in base head; do
		src=$tmp/src-base
		[ $v = head ] && src=$head_src
		for pkg in sfu rtc; do
			# From the package's directory, as go test runs it (testdata).
			(cd "$src/$pkg" && "$tmp/$v/$pkg.test" -test.run '^$' -test.bench "$BENCH" -test.benchmem -test.count 1) >>"$tmp/$v.bench"
		done
	done
	printf '  run %s of %s\r' "$i" "$COUNT"
done
echo
benchstat_cmd "base=$tmp/base.bench" "head=$tmp/head.bench"

netns=""
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare -n true 2>/dev/null; then
	netns=yes
fi
echo
echo "synthetic load: $COMPARE_LOAD (base, head alternating, $LOADS runs each)"
for i in $(seq "$LOADS"); do
	for v in base head; do
		json=$tmp/$v-$i.json
		rc=0
		# shellcheck disable=SC2086 # COMPARE_LOAD is a list of flags
		if [ -n "$netns" ]; then
			unshare -n sh -c 'ip link set lo up && exec "$@"' sh "$self" --load "$tmp/$v/sfu" "$tmp/loadtest" "$json" $COMPARE_LOAD || rc=$?
		else
			"$self" --load "$tmp/$v/sfu" "$tmp/loadtest" "$json" $COMPARE_LOAD || rc=$?
		fi
		if [ "$rc" != 0 ]; then
			echo "  $v run $i: the load failed (exit $rc):"
			tail -5 "$json.txt" | sed 's/^/    /'
		fi
	done
done

if ! command -v jq >/dev/null; then
	echo "jq not found: the reports are not compared" >&2
	exit 1
fi
# Per run: CPU µs per forwarded packet, p99 ms, packets/s received, loss %.
printf '%-5s %-4s %14s %8s %10s %8s\n' version run "CPU µs/packet" "p99 ms" packets/s "loss %"
for i in $(seq "$LOADS"); do
	for v in base head; do
		json=$tmp/$v-$i.json
		[ -s "$json" ] || continue
		jq -r --arg v "$v" --arg i "$i" '[$v, $i,
			((.server.cpu_seconds_per_1k_packets // 0) * 1000),
			(.latency_ms.p99 // 0), (.packets_received / (if .duration_s > 0 then .duration_s else 1 end)),
			(.loss_ratio * 100)] | @tsv' "$json"
	done
done | awk -F '\t' '{ printf "%-5s %-4s %14.2f %8.2f %10.0f %8.3f\n", $1, $2, $3, $4, $5, $6 }'
mean() { # mean of a jq expression over a version's reports
	for f in "$tmp/$1"-*.json; do [ -s "$f" ] && jq -r "$2 // empty" "$f"; done |
		awk '{ s += $1; n++ } END { if (n) printf "%.6f", s / n }'
}
cpu_b=$(mean base '.server.cpu_seconds_per_1k_packets') cpu_h=$(mean head '.server.cpu_seconds_per_1k_packets')
p99_b=$(mean base '.latency_ms.p99') p99_h=$(mean head '.latency_ms.p99')
if [ -z "$cpu_b" ] || [ -z "$cpu_h" ] || [ -z "$p99_b" ] || [ -z "$p99_h" ]; then
	echo "no figures to compare: a version's loads all failed" >&2
	exit 1
fi
awk -v cb="$cpu_b" -v ch="$cpu_h" -v pb="$p99_b" -v ph="$p99_h" 'BEGIN {
	printf "head/base: CPU per forwarded packet %.3f (%.2f vs %.2f µs), p99 added latency %.3f (%.2f vs %.2f ms)\n",
		ch / cb, ch * 1000, cb * 1000, ph / pb, ph, pb
}'
