# Ballast. `make demo` runs the demo (the sensor pipeline on a multi-node
# Docker Swarm on this machine, nodes killed, nothing lost), `make run`
# starts a single-node daemon, `make test` runs the tests (root needed for
# the FUSE, loop-device, filesystem and Docker tests).
GO      ?= go
BIN     := bin
DATA    ?= /var/lib/ballast
# Fuzzing runs are bounded by a count of inputs, not a duration: with a
# duration, go1.26's fuzz coordinator can fail a run with a bare "context
# deadline exceeded" at the deadline (golang/go#75804; seen here under load).
FUZZTIME ?= 20000x

.PHONY: build run deps test unit fuzz bench lint clean demo demo-up demo-down demo-scenario

build:
	$(GO) build -o $(BIN)/ballast ./cmd/ballast
	$(GO) build -o $(BIN)/ballast-bench ./cmd/ballast-bench

deps:
	deploy/install-deps.sh

# A single node with every default embedded: etcd member, one pool dir,
# socket at /run/ballast/ballast.sock.
run: deps build
	$(BIN)/ballast daemon --data-dir $(DATA)

test: deps lint
	$(GO) test -count=1 -timeout 45m ./...
	$(MAKE) fuzz

unit:
	$(GO) test -count=1 -short ./pool/...

# Short fuzzing passes over the parsers and the API handlers.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseSize$$' -fuzztime $(FUZZTIME) ./pool/spec
	$(GO) test -run '^$$' -fuzz '^FuzzValidateName$$' -fuzztime $(FUZZTIME) ./pool/spec
	$(GO) test -run '^$$' -fuzz '^FuzzParseLabels$$' -fuzztime $(FUZZTIME) ./pool/spec
	$(GO) test -run '^$$' -fuzz '^FuzzHandlers$$' -fuzztime $(FUZZTIME) ./pool/api
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFrame$$' -fuzztime $(FUZZTIME) ./pool/remote
	$(GO) test -run '^$$' -fuzz '^FuzzHandlers$$' -fuzztime $(FUZZTIME) ./pool/peer
	$(GO) test -run '^$$' -fuzz '^FuzzParseSpec$$' -fuzztime $(FUZZTIME) ./driver
	$(GO) test -run '^$$' -fuzz '^FuzzHandlers$$' -fuzztime $(FUZZTIME) ./driver
	$(GO) test -run '^$$' -fuzz '^FuzzRefsFile$$' -fuzztime $(FUZZTIME) ./driver
	$(GO) test -run '^$$' -fuzz '^FuzzParameters$$' -fuzztime $(FUZZTIME) ./csi
	$(GO) test -run '^$$' -fuzz '^FuzzPageToken$$' -fuzztime $(FUZZTIME) ./csi
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./workloads/sensors
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./workloads/cql
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFrame$$' -fuzztime $(FUZZTIME) ./workloads/cql
	$(GO) test -run '^$$' -fuzz '^FuzzGuard$$' -fuzztime $(FUZZTIME) ./workloads/kafka
	$(GO) test -run '^$$' -fuzz '^FuzzParseURL$$' -fuzztime $(FUZZTIME) ./pool/backup
	$(GO) test -run '^$$' -fuzz '^FuzzParseCredentials$$' -fuzztime $(FUZZTIME) ./pool/backup
	$(GO) test -run '^$$' -fuzz '^FuzzParseManifest$$' -fuzztime $(FUZZTIME) ./pool/backup
	$(GO) test -run '^$$' -fuzz '^FuzzPlan$$' -fuzztime $(FUZZTIME) ./workloads/autoscale
	$(GO) test -run '^$$' -fuzz '^FuzzMessage$$' -fuzztime $(FUZZTIME) ./pool/keeper
	$(GO) test -run '^$$' -fuzz '^FuzzFDStoreState$$' -fuzztime $(FUZZTIME) ./pool/keeper

# fio against ext4 on a plain loop device (the baseline) and against
# Ballast volumes, printed as ratios; see README "Benchmarks".
bench: build
	deploy/install-deps.sh --bench
	$(BIN)/ballast-bench --ballast $(BIN)/ballast

# The demo (workloads/demo): a Docker Swarm of DEMO_NODES Docker-in-Docker
# nodes on this machine, each with its dockerd and a Ballast daemon of one
# cluster, runs deploy/swarm/sensors.yml; nodes are killed while readings
# flow; the report goes to DEMO_REPORT. `make demo` does it all and removes
# what it made; `make demo-up`, `make demo-scenario` and `make demo-down`
# do it in parts. The nodes run a static ballast binary mounted from the
# host, so a code change needs only `make demo-down demo-up`.
DEMO_NODES ?= 4
DEMO_REPORT ?= demo-report

demo: deps $(BIN)/ballast-static
	$(BIN)/ballast-static demo run --nodes $(DEMO_NODES) --report $(DEMO_REPORT)

demo-scenario: $(BIN)/ballast-static
	$(BIN)/ballast-static demo scenario --report $(DEMO_REPORT)

$(BIN)/ballast-static: FORCE
	CGO_ENABLED=0 $(GO) build -o $@ ./cmd/ballast

demo-up: deps $(BIN)/ballast-static
	$(BIN)/ballast-static demo up --nodes $(DEMO_NODES)

demo-down: $(BIN)/ballast-static
	$(BIN)/ballast-static demo down

FORCE:

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
