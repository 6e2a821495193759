# The two commands a fresh machine needs: `make run` and `make test`.
# Everything else (the virtualenv, the packages) is made here, not by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?=

.PHONY: run test build bench bench-e2e bench-md bench-state chaos fuzz clean help

help:
	@echo "make run    start the exchange on this host with a demo market (Ctrl+C to stop)"
	@echo "make test   run the whole test suite (with the wheel install check, 1-2 min of it;"
	@echo "           PYTEST_ARGS=\"-m 'not packaging'\" skips that in a quick loop)"
	@echo "make lint   ruff (format and check) and mypy; .ci/run runs it before the suite"
	@echo "make build  rebuild the compiled matcher now (ZEX_PURE=1 make build: plain Python)"
	@echo "make bench  run the benchmarks in bench/ (prints figures; see bench/README.md)"
	@echo "make bench-e2e  the end-to-end order entry benchmark (real processes, a few minutes)"
	@echo "make bench-state  the matcher's digest and snapshot pauses on a 1M-command day (~2 min)"
	@echo "make fuzz   atheris over the codec, the gateway intake and the snapshot service (FUZZ_RUNS=1000000 inputs each)"
	@echo "make load   locust against the exchange of \`make run\` (USERS=10 DURATION=60s PROFILE=steady|burst|many|open)"

# The compiled matcher modules are rebuilt when their sources change (setup.py).
# Every compiled module has a .pxd beside its .py (nodes/matcher/buildinfo.py lists them).
PXD := $(wildcard nodes/matcher/*.pxd)
HOT := $(PXD) $(PXD:.pxd=.py)

$(STAMP): pyproject.toml setup.py $(HOT)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "zex needs Python 3.11 or newer (tomllib); set PYTHON=python3.11")'
	@test -x $(BIN)/python || { echo "creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing zex and its test dependencies into $(VENV) (the matcher is compiled with Cython: about a minute)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@$(BIN)/python -c 'from zex.nodes.matcher import build_kind; print("matcher build:", build_kind())'
	@[ "$$ZEX_PURE" = 1 ] || $(BIN)/python -c 'from zex.nodes.matcher import build_kind; build_kind() == "compiled" or print("the matcher did not compile; to see why: $(BIN)/python -m pip install -v -e .")'
	@touch $(STAMP)

# Rebuild and reinstall now (ZEX_PURE=1 make build: the matcher as plain Python).
build:
	@rm -f $(STAMP)
	@$(MAKE) --no-print-directory $(STAMP)

run: $(STAMP)
	$(BIN)/zex run $(if $(CONFIG),--config $(CONFIG))

# The C market-data subscriber test (tests/marketdata/test_c_subscriber.py)
# compiles protocol/examples/c/md_book.c against libzmq and msgpack-c. Their
# Debian packages are installed here when missing and we are root; otherwise
# this says how to install them and that test skips.
C_DEPS := libzmq3-dev libmsgpack-dev

# tests/observability/test_dashboards_live.py checks dashboards/ with promtool and a real
# Prometheus scraping a real exchange: Debian's prometheus package (promtool included) is
# installed the same way, without its recommends (node exporter). No service is started
# here (no systemd); the test runs its own prometheus on a free port either way.
PROM_DEPS := prometheus

.PHONY: test-deps
test-deps:
	@dpkg -s $(C_DEPS) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing $(C_DEPS) (apt-get) for the C market-data subscriber test"; \
	    (apt-get update -qq && apt-get install -y -qq $(C_DEPS) >/dev/null) \
	      || echo "could not install $(C_DEPS); the C subscriber test will skip"; \
	  else \
	    echo "the C subscriber test skips without $(C_DEPS); install them with: sudo apt-get install $(C_DEPS)"; \
	  fi; }
	@{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing $(PROM_DEPS) (apt-get) for the dashboards test (promtool, a live Prometheus)"; \
	    (apt-get update -qq && apt-get install -y -qq --no-install-recommends $(PROM_DEPS) >/dev/null) \
	      || echo "could not install $(PROM_DEPS); the dashboards test will skip"; \
	  else \
	    echo "the dashboards test skips without prometheus; install it with: sudo apt-get install $(PROM_DEPS)"; \
	  fi; }

test: $(STAMP) test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Checked style: ruff's formatter and linter, then mypy over the installed module names
# (zex.protocol, zex.nodes), through a tree of links named zex/ under build/typecheck.
TYPECHECK := build/typecheck

# Pinned: the formatter's output and the rules change between releases.
LINT_DEPS := ruff==0.17.6 mypy==2.4.1

lint: $(STAMP)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check $(LINT_DEPS)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	@mkdir -p $(TYPECHECK)/zex && ln -sfn ../../../protocol $(TYPECHECK)/zex/protocol \
	  && ln -sfn ../../../nodes $(TYPECHECK)/zex/nodes
	cd $(TYPECHECK) && ../../$(BIN)/mypy --config-file ../../pyproject.toml zex/protocol zex/nodes

bench: $(STAMP)
	$(BIN)/python bench/book_bench.py

bench-e2e: $(STAMP)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/python bench/e2e_bench.py

bench-state: $(STAMP)
	$(BIN)/python bench/state_bench.py

bench-md: $(STAMP)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/python bench/md_bench.py

# Locust, headless, against the exchange `make run` started (loadtest/README.md). Results:
# loadtest/results/<time>-<profile>/ (stats.json is the final word; the CSV lags the run).
PROFILE  ?= steady
USERS    ?= $(if $(filter many,$(PROFILE)),100,10)
SPAWN    ?= $(if $(filter many,$(PROFILE)),20,$(USERS))
DURATION ?= 60s

load: $(STAMP)
	@$(BIN)/python -c 'import locust, hdrh' 2>/dev/null || \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[load]'
	@out=loadtest/results/$$(date +%Y%m%d-%H%M%S)-$(PROFILE); mkdir -p $$out; \
	echo "locust: profile $(PROFILE), $(USERS) users, $(DURATION); results in $$out"; \
	ZEX_LOAD_PROFILE=$(PROFILE) $(BIN)/python -m locust -f loadtest/locustfile.py --headless \
	  -u $(USERS) -r $(SPAWN) -t $(DURATION) --stop-timeout 5 --only-summary \
	  --csv $$out/zex --html $$out/report.html --json-file $$out/stats --zex-out $$out \
	  $(if $(CONFIG),--zex-config $(CONFIG)) $(LOCUST_ARGS); rc=$$?; \
	if [ -f $$out/stats.json ]; then echo; $(BIN)/python loadtest/summary.py $$out; \
	else rm -rf "$$out"; fi; exit $$rc

# Crash anywhere, the long run: SIGKILL any node of a whole exchange of processes under load,
# KILLS times, and check nothing acknowledged was lost or duplicated (bench/README.md).
KILLS ?= 200

chaos: $(STAMP)
	$(BIN)/python bench/chaos.py --kills $(KILLS) $(CHAOS_ARGS)

# Coverage-guided fuzzing (fuzz/run.py): FUZZ_RUNS inputs per target, one target after the
# other, then inputs, crashes, hangs and reject codes reached per target (bench/README.md).
# atheris is installed here, not as an extra: it is a fuzzing tool, not a test dependency.
FUZZ_RUNS ?= 1000000
FUZZ_TARGETS ?=

fuzz: $(STAMP)
	@$(BIN)/python -c 'import atheris' 2>/dev/null || \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check atheris==3.0.0
	$(BIN)/python -m fuzz.run --runs $(FUZZ_RUNS) $(FUZZ_TARGETS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
