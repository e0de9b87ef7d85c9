# AI Mass task runner: the same commands locally and in CI. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STATE := .state
export PATH := $(abspath $(BIN)):$(PATH)

.DEFAULT_GOAL := help
SEAWEEDFS_VERSION := v0.0.0-20261109003541-7506e5f91cd6

.PHONY: browser seaweedfs help setup run test test-unit test-integration up down status logs lint demo-models clean proto bench bench-smoke soak faults faults-smoke

help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-18s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 (PyFlink 2.2 wheels need it)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

JAVA_SOURCES := $(shell find java/src -name '*.java' 2>/dev/null)

$(STATE)/jars/.resolved: pom.xml java/pom.xml $(JAVA_SOURCES)
	@command -v java >/dev/null || { echo "error: java not found; install a JDK 17+ (apt-get install openjdk-17-jdk-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "error: mvn not found; install Maven (apt-get install maven): it resolves the Kafka and connector jars"; exit 1; }
	@echo "resolving JVM artifacts from Maven Central and building the job's Java operators (pom.xml, java/) ..."
	@mvn -q -B package || { echo "error: Maven could not resolve the jars; is Maven Central reachable (proxy in ~/.m2/settings.xml)?"; exit 1; }
	@touch $@

# SeaweedFS, the local S3-compatible store the object-storage tests (and AIMASS_STORAGE_LOCAL_PORT)
# start: its module has a replace directive, so `go install` refuses it; download the module,
# build its weed/ command in a writable copy, keep the binary only (see aimass/stack/objectstore.py).
$(STATE)/bin/weed:
	@command -v go >/dev/null || { echo "error: go not found; install Go 1.24+ (apt-get install golang-go): it builds SeaweedFS, the local S3 store"; exit 1; }
	@echo "building SeaweedFS from the Go module proxy into $@ (the local S3 store for checkpoints; about 6 min the first time) ..."
	@set -euo pipefail; \
	  dir=$$(go mod download -json github.com/seaweedfs/seaweedfs@$(SEAWEEDFS_VERSION) | $(BIN)/python -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'); \
	  work=$(STATE)/build/seaweedfs; rm -rf "$$work"; mkdir -p $(STATE)/build $(STATE)/bin; cp -r "$$dir" "$$work"; chmod -R u+w "$$work"; \
	  (cd "$$work" && GOFLAGS=-mod=mod go build -o "$(CURDIR)/$@.tmp" ./weed) || { echo "error: building SeaweedFS failed (Go module proxy reachable? GOPROXY=$$(go env GOPROXY))"; exit 1; }; \
	  mv "$@.tmp" "$@"; rm -rf "$$work"

seaweedfs: $(STATE)/bin/weed ## build SeaweedFS (the local S3 store for checkpoints on object storage)

# Headless Chromium for the test that a web page served elsewhere cannot read the Flink REST API
# (tests/integration/test_flink_origin.py): Debian's package, about 155 MB (a minute or two).
browser: ## install headless Chromium if missing (apt-get install chromium)
	@command -v chromium >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "error: chromium not found; install it with your package manager (Debian/Ubuntu: apt-get install chromium)"; exit 1; }; \
	  echo "installing Chromium (apt-get install chromium, about 155 MB) ..."; \
	  sudo=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium >/dev/null \
	    || { echo "error: apt-get could not install chromium (package mirror reachable?)"; exit 1; }; }

# The benchmark's peers and plots (and the bench smoke test's Kafka client): on demand.
$(BIN)/.bench-installed: $(BIN)/.installed requirements-bench.txt
	$(BIN)/pip install --quiet -r requirements-bench.txt
	@touch $@

models/.built: $(BIN)/.installed aimass/tools/demo.py
	$(BIN)/aimass models
	@touch $@

setup: $(BIN)/.installed $(STATE)/jars/.resolved models/.built ## install the venv, resolve the jars, build the demo models

run: setup ## run the main job on the local stack with demo traffic (the README's first command)
	$(BIN)/aimass demo

test: setup $(BIN)/.bench-installed $(STATE)/bin/weed browser ## run the whole test suite: JUnit (java/), then unit, pipeline and integration (the README's second command)
	mvn -q -B -f java/pom.xml test
	$(BIN)/pytest -q tests

test-unit: setup ## unit tests only (no Flink, no Kafka): JUnit and pytest
	mvn -q -B -f java/pom.xml test
	$(BIN)/pytest -q tests/unit

test-integration: setup $(BIN)/.bench-installed $(STATE)/bin/weed browser ## integration tests on the real local stack
	$(BIN)/pytest -q tests/integration

up: setup ## start Kafka and the Flink cluster
	$(BIN)/aimass up

down: ## stop everything `up` started
	@if [ -x $(BIN)/aimass ]; then $(BIN)/aimass down; else echo "nothing to stop (no venv)"; fi

status: ## what runs, where, pids, web UI, topics and lag
	$(BIN)/aimass status

logs: ## show the JobManager log (aimass logs COMPONENT for others)
	$(BIN)/aimass logs jobmanager

proto: $(BIN)/.installed ## regenerate the gateway's gRPC stubs (aimass/gateway/_gen) from proto/
	$(BIN)/python -m aimass.gateway.protogen

bench: setup $(BIN)/.bench-installed ## full benchmark on its own stack -> bench/out/ (about 40 min; BENCH_ARGS=... to narrow)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-smoke: setup $(BIN)/.bench-installed ## the benchmark harness end to end in a few minutes (figures not meaningful)
	$(BIN)/python -m bench --smoke --out bench/out/smoke $(BENCH_ARGS)

soak: setup $(BIN)/.bench-installed ## the job at 50% of its sustained rate for 30 min, sampled every 5 s -> bench/out/soak/ (SOAK_ARGS="--set job.dedup_ttl_s=120 --duration 10m"; --help)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

faults: setup ## fault campaign on its own stack: 6 TaskManager kills, a broker restart, ~20k requests -> docs/RELIABILITY.md (FAULTS_ARGS="--mode at-least-once" or "--python-mode process" for the others)
	$(BIN)/python -m aimass.faults $(FAULTS_ARGS)

faults-smoke: setup ## the fault campaign in a few minutes: 2 kills, a broker restart, ~2,000 requests (report under .state/faults-out/)
	$(BIN)/python -m aimass.faults --smoke $(FAULTS_ARGS)

lint: setup ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy

clean: down ## remove the state folder (data, logs, checkpoints, jars) and the demo models
	rm -rf $(STATE) models
