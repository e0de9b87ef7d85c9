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

# Installs from the hashed locks (pip's hash-checking mode): first the pinned pip and setuptools
# on their own, then every package; the project itself last, editable, without dependencies and
# built by the locked setuptools (no build isolation, so nothing unpinned is fetched for it).
$(BIN)/.installed: requirements-pip.lock requirements-dev.lock requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 (PyFlink 2.2 wheels need it)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-pip.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# The locks: every package, transitive ones included, pinned with its sha256 hashes, for Python
# 3.11 on Linux x86_64, compiled by pip-tools (in a venv of its own under .state/) from the pins in
# requirements*.txt, which stay the files people edit. The bench lock is the whole test venv
# (dev, bench, installer) and is resolved first; the others are constrained to it, so every
# package has one version in all of them. pip-compile keeps a lock's other pins where it can:
# LOCK_ARGS=--upgrade (or --upgrade-package NAME) moves transitive packages too.
PIP_TOOLS_VERSION := 7.7.0
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock  (pip-tools $(PIP_TOOLS_VERSION), Python 3.11, Linux x86_64; see the Makefile)" \
	$(STATE)/piptools/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

$(STATE)/piptools/bin/pip-compile:
	@test -x $(STATE)/piptools/bin/python || $(PYTHON) -m venv $(STATE)/piptools
	$(STATE)/piptools/bin/pip install --quiet -c requirements-pip.txt pip pip-tools==$(PIP_TOOLS_VERSION)

.PHONY: lock
lock: $(STATE)/piptools/bin/pip-compile ## regenerate the hashed requirements*.lock from requirements*.txt (after bumping a pin; commit both)
	$(PIP_COMPILE) -o requirements-bench.lock requirements-dev.txt requirements-bench.txt requirements-pip.txt
	$(PIP_COMPILE) -c requirements-bench.lock -o requirements-dev.lock requirements-dev.txt requirements-pip.txt
	$(PIP_COMPILE) -c requirements-dev.lock -o requirements.lock requirements.txt
	$(PIP_COMPILE) -c requirements-dev.lock -o requirements-pip.lock requirements-pip.txt

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
$(BIN)/.bench-installed: $(BIN)/.installed requirements-bench.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements-bench.lock
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
