# kanade — build, run and test. See README.md.
#   make run     server (dev mode, embedded NATS, SQLite) + one local agent
#   make test    the whole suite, and the agent's Windows build under Wine (installs Chromium and Wine when missing)
#   make bench   kanade vs a bare NATS + SQLite program at N simulated agents (N=1000; N=1000,5000,10000)

SHELL      := /bin/bash
GO         ?= go
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X main.version=$(VERSION)
export CGO_ENABLED := 0

RUN_DIR    ?= .kanade-dev
RUN_BIN    ?= bin
HTTP_ADDR  ?= 127.0.0.1:8080
NATS_ADDR  ?= 127.0.0.1:4222
LOCAL_OS   := $(shell uname -s | tr A-Z a-z)

N          ?= 1000
BENCH_N    ?= $(N)
BENCH_FLAGS ?=

.PHONY: all build run test test-short test-windows bench lint generate check-generated tidy clean deps-browser

all: build

## build: bin/kanade and bin/kanade-agent for this machine, plus linux/amd64 and windows/amd64 builds
##        and a linux/arm64 agent; kanade serve offers the agents under bin/<os>-<arch>/ for download.
##        Also bin/kanade-swarm, the load simulator (for this machine only: it is not shipped)
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kanade ./app
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kanade-agent ./agent
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kanade-swarm ./agent/swarm/cmd/kanade-swarm
	GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/linux-amd64/kanade ./app
	GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/linux-amd64/kanade-agent ./agent
	GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/linux-arm64/kanade-agent ./agent
	GOOS=windows GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/windows-amd64/kanade.exe ./app
	GOOS=windows GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/windows-amd64/kanade-agent.exe ./agent

## run: the server in dev mode plus one local agent; data under $(RUN_DIR); Ctrl+C stops both.
##      The server and the agent run in their own process groups (set -m), so Ctrl+C reaches only this
##      recipe, which stops them in order and exits 0 (no "Error 130").
run:
	@mkdir -p $(RUN_DIR) $(RUN_BIN)
	@server=; agent=; \
	stop() { trap - INT TERM; echo ""; echo "stopping the agent and the server…"; \
	  [ -n "$$agent" ] && kill $$agent 2>/dev/null; [ -n "$$server" ] && kill $$server 2>/dev/null; wait 2>/dev/null; echo "stopped."; exit 0; }; \
	trap stop INT TERM; \
	echo "building the server (first build takes a minute)…"; \
	$(GO) build -ldflags '$(LDFLAGS)' -o $(RUN_BIN)/kanade ./app || exit 1; \
	echo "building the agent…"; \
	$(GO) build -ldflags '$(LDFLAGS)' -o $(RUN_BIN)/kanade-agent ./agent || exit 1; \
	echo "starting the server…"; \
	set -m; $(RUN_BIN)/kanade serve --data $(RUN_DIR)/server --http $(HTTP_ADDR) --nats-listen $(NATS_ADDR) & server=$$!; set +m; \
	for i in $$(seq 1 300); do [ -s $(RUN_DIR)/server/agent-credentials ] && break; \
	  kill -0 $$server 2>/dev/null || { echo "the server did not start: see its messages above"; exit 1; }; sleep 0.1; done; \
	echo "starting a local agent…"; \
	set -m; $(RUN_BIN)/kanade-agent --server nats://$(NATS_ADDR) --credentials $(RUN_DIR)/server/agent-credentials \
	  --data $(RUN_DIR)/agent --groups dev,$(LOCAL_OS) --heartbeat 10s & agent=$$!; set +m; \
	echo ""; echo "  kanade is running: open http://$(HTTP_ADDR)   (dev mode; Ctrl+C stops the server and the agent)"; echo ""; \
	wait $$server; rc=$$?; trap - INT TERM; kill $$agent 2>/dev/null; wait 2>/dev/null; \
	echo "the server stopped (exit status $$rc)"; exit $$rc

## test: the full suite with the race detector (which needs cgo; the binaries under test are still built CGO_ENABLED=0),
##       after test-windows
test: deps-browser test-windows
	GOOS=windows $(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 25m ./...

## test-windows: the agent's packages built for Windows, their tests run under Wine (docs/WINDOWS.md);
##               installs Wine when run as root with apt, else says how
test-windows:
	.ci/wine/wine-env --install --server env PATH="$(CURDIR)/.ci/wine/bin:$$PATH" GOOS=windows GOARCH=amd64 \
	  $(GO) test -count=1 -timeout 10m ./agent/...

## test-short: the suite without browser, end-to-end and slow integration tests
test-short:
	CGO_ENABLED=1 $(GO) test -race -count=1 -short ./...

## deps-browser: install Debian's chromium for the browser tests when it is missing
deps-browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium for the browser tests (apt-get, about a minute)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "browser tests need Chromium: run 'sudo apt-get install -y chromium' (or set KANADE_CHROMIUM=/path/to/chrome)"; exit 1; \
	  fi; }

## bench: kanade (server + swarm of N simulated agents) next to a bare NATS + SQLite baseline; markdown table on stdout.
##        make bench N=10000, make bench BENCH_N=1000,5000,10000, BENCH_FLAGS='-rounds 5 -keep', '-noise' (a shared box), '-tls compare' or '-update' (an agent update wave; kanade-bench -h)
bench:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kanade ./app
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kanade-swarm ./agent/swarm/cmd/kanade-swarm
	$(GO) build -trimpath -ldflags '-s -w' -o bin/kanade-bench ./app/bench
	bin/kanade-bench -n $(BENCH_N) -bin bin $(BENCH_FLAGS)

## lint: formatting, vet (also for Windows), staticcheck (pinned in go.mod), go.mod tidy, generated templ code in sync
lint: check-generated
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod or go.sum is not tidy: run 'go mod tidy'"; $(GO) mod tidy -diff; exit 1; }
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...
	GOOS=windows $(GO) build -o /dev/null ./app ./agent
	$(GO) tool staticcheck ./...

## generate: templ → *_templ.go
generate:
	$(GO) tool templ generate

## check-generated: fails when *_templ.go are not what templ generates from the .templ files
check-generated:
	@$(GO) tool templ generate >/dev/null 2>&1
	@git diff --exit-code --stat -- '*_templ.go' || { echo "*_templ.go out of date: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git ls-files --others --exclude-standard -- '*_templ.go')" || { echo "untracked *_templ.go: commit them"; exit 1; }

clean:
	rm -rf bin tmp $(RUN_DIR)
