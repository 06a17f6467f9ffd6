# Switchboard: make run starts the server on its embedded defaults; make test
# runs every test (installing Chromium first where it can).

GO      ?= go
ARGS    ?=
# Browser and network tests run in a fresh network namespace with only
# loopback when we are allowed to make one, so nothing leaves the machine
# and ports never clash.
NETNS   := $(shell [ "$$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare -n true 2>/dev/null && echo yes)

.PHONY: run build test vet chromium firefox iptables bench fuzz clean screenshots

run:
	$(GO) run ./cmd/sfu $(ARGS)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/sfu ./cmd/sfu

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }

# Debian's chromium, when missing and we are root; without it the browser
# tests skip, or fail under CI=true.
chromium:
	@if [ -x /usr/lib/chromium/chromium ] || command -v chromium >/dev/null || command -v google-chrome >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium not found and cannot install it: browser tests will skip (fail under CI=true)"; fi

# Debian's firefox-esr, when missing and we are root; without it the Firefox
# tests skip, or fail under CI=true.
firefox:
	@if command -v firefox-esr >/dev/null || command -v firefox >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing firefox-esr"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq firefox-esr >/dev/null; \
	else echo "firefox not found and cannot install it: Firefox tests will skip (fail under CI=true)"; fi

# iptables for the network namespace tests (netlab: UDP dropped, lossy
# links), when missing and we are root; without it they skip, or fail under
# CI=true.
iptables:
	@if command -v iptables >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing iptables"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables iproute2 >/dev/null; \
	else echo "iptables not found and cannot install it: network namespace tests will skip (fail under CI=true)"; fi

# Packages are tested one at a time (-p 1): the browser tests measure
# frame rates and bandwidth estimates, and on two cores the load tool's own
# tests running beside them starved the browsers.
GOTEST := $(GO) test -race -count=1 -p 1 -timeout 12m ./...

test: chromium firefox iptables vet
	$(GO) mod download
ifeq ($(NETNS),yes)
	unshare -n sh -c 'ip link set lo up && $(GOTEST)'
else
	$(GOTEST)
endif

# bench runs the Go benchmarks, then a short synthetic load against the
# server built without -race on 127.0.0.1 (in its own network namespace when
# root): the summary shows the server's CPU-seconds per 1,000 forwarded
# packets, the p50/p99 added latency and the loss. BENCH_LOAD changes the load;
# publishers send simulcast as the web client does. bench-rooms and
# bench-large are the same load step with other shapes (many small rooms; one
# large room), without the Go benchmarks. BENCH_PROCS=N runs the server with
# GOMAXPROCS=N, to measure how it scales from one core to two. Each writes
# bin/TARGET.json.
BENCH_LOAD  ?= -rooms 1 -publishers 4 -subscribers 12 -bitrate 1.5M -simulcast -warmup 10s -duration 20s
BENCH_PROCS ?=
BENCH_SFU    = $(if $(BENCH_PROCS),GOMAXPROCS=$(BENCH_PROCS) )bin/sfu -listen 127.0.0.1:18080 -loopback -log-level warn \
	-max-participants 0 -max-connections-per-ip 0 -max-messages-per-second 0
# bench_run runs the load tool's mode $(1) with flags $(2) against a server
# started for it, and stops the server after; the exit status is the load
# tool's.
bench_run = $(BENCH_SFU) >bin/$@-sfu.log 2>&1 & pid=$$!; \
	bin/loadtest $(1) -url http://127.0.0.1:18080/ -wait-server 10s $(2) -json bin/$@.json; rc=$$?; \
	kill $$pid; wait $$pid; exit $$rc
ifeq ($(NETNS),yes)
bench_ns = unshare -n sh -c 'ip link set lo up && $(1)'
else
bench_ns = sh -c '$(1)'
endif
define BENCH_BUILD
CGO_ENABLED=0 $(GO) build -o bin/sfu ./cmd/sfu
$(GO) build -o bin/loadtest ./cmd/loadtest
endef

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./rtc/ ./sfu/
	$(BENCH_BUILD)
	$(call bench_ns,$(call bench_run,synthetic,$(BENCH_LOAD)))

.PHONY: bench-rooms bench-large
bench-rooms: BENCH_LOAD = -rooms 12 -publishers 2 -subscribers 3 -bitrate 1.5M -simulcast -warmup 10s -duration 20s
bench-large: BENCH_LOAD = -rooms 1 -publishers 4 -subscribers 40 -bitrate 1.5M -simulcast -warmup 10s -duration 20s
bench-rooms bench-large:
	$(BENCH_BUILD)
	$(call bench_ns,$(call bench_run,synthetic,$(BENCH_LOAD)))

# ramp keeps one room of publishers and adds subscribers a step at a time
# (loadtest ramp) against the server set up as for bench, until loss passes
# 0.5% or the p99 added latency 20 ms, and prints the knee: the last step
# within both. RAMP_ARGS changes the shape and the limits; bin/ramp.json and
# bin/ramp.svg hold the steps. BENCH_PROCS applies.
RAMP_ARGS ?= -publishers 4 -bitrate 1.5M -simulcast -step 4

.PHONY: ramp
ramp:
	$(BENCH_BUILD)
	$(call bench_ns,$(call bench_run,ramp,$(RAMP_ARGS)))

# bench-compare BASE=<commit> [HEAD=<commit>] compares the forwarding
# benchmarks and a short synthetic load of two versions (HEAD: the working
# tree when not given); see scripts/bench-compare.sh. Not part of `make
# test` or CI.
.PHONY: bench-compare
bench-compare:
	@test -n "$(BASE)" || { echo "usage: make bench-compare BASE=<commit> [HEAD=<commit>]"; exit 2; }
	GO=$(GO) scripts/bench-compare.sh $(BASE) $(HEAD)

# bench-cluster runs one load on a single server, then across two nodes
# (publishers on one, subscribers on the other, so every packet crosses the
# trunk), and prints CPU per 1,000 delivered packets and added latency for
# both (scripts/bench-cluster.sh; CLUSTER_LOAD, RUNS). Not part of make test.
.PHONY: bench-cluster
bench-cluster:
	GO=$(GO) scripts/bench-cluster.sh

# soak holds one call for SOAK_ARGS' -duration (default 10 minutes; hours
# work) against the server built without -race, set up as for bench: 3
# simulcast publishers and 6 viewers, layers switching every second, a
# viewer killed and replaced every 10 s, a publisher restarting every 30 s,
# 5% loss at the viewers. It fails when goroutines, heap, RSS or open fds
# trend upward after the warm-up, a viewer stops receiving, or the server
# does not go idle once the room is empty; bin/soak.csv and bin/soak.svg
# hold a sample a second. Not part of `make test` or CI.
SOAK_ARGS ?=
SOAK_RUN  := bin/sfu -listen 127.0.0.1:18080 -loopback -log-level warn \
	-max-participants 0 -max-connections-per-ip 0 -max-messages-per-second 0 >bin/soak-sfu.log 2>&1 & pid=$$!; \
	bin/loadtest soak -url http://127.0.0.1:18080/ -wait-server 10s -csv bin/soak.csv $(SOAK_ARGS); rc=$$?; \
	kill $$pid; wait $$pid; exit $$rc

.PHONY: soak
soak:
	CGO_ENABLED=0 $(GO) build -o bin/sfu ./cmd/sfu
	$(GO) build -o bin/loadtest ./cmd/loadtest
ifeq ($(NETNS),yes)
	unshare -n sh -c 'ip link set lo up && $(SOAK_RUN)'
else
	sh -c '$(SOAK_RUN)'
endif

# fuzz runs every fuzz target (each parser that faces the network) for
# FUZZTIME each; `make test` runs their seed corpora as ordinary tests.
FUZZTIME ?= 30s
FUZZ_PKGS := ./rtc ./sfu ./signal

fuzz:
	@for pkg in $(FUZZ_PKGS); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# screenshots renders the web client in headless Chromium (1920x1080 and
# 390x844: pre-join, a 4-person call, speaker view, a muted participant, a
# phone, a screen share, reconnecting) into docs/screenshots/.
screenshots: chromium
ifeq ($(NETNS),yes)
	unshare -n sh -c 'ip link set lo up && SWITCHBOARD_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run TestScreenshots ./cmd/sfu/'
else
	SWITCHBOARD_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run TestScreenshots ./cmd/sfu/
endif

clean:
	rm -rf bin
