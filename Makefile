# The two commands a fresh machine needs: `make run` and `make test`.
# Everything else (the virtualenv, the packages) is made here, not by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?=

.PHONY: run test bench bench-e2e clean help

help:
	@echo "make run    start the exchange on this host with a demo market (Ctrl+C to stop)"
	@echo "make test   run the whole test suite"
	@echo "make bench  run the benchmarks in bench/ (prints figures; see bench/README.md)"
	@echo "make bench-e2e  the end-to-end order entry benchmark (real processes, a few minutes)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "zex needs Python 3.11 or newer (tomllib); set PYTHON=python3.11")'
	@test -x $(BIN)/python || { echo "creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing zex and its test dependencies into $(VENV)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/zex run $(if $(CONFIG),--config $(CONFIG))

# The C market-data subscriber test (tests/marketdata/test_c_subscriber.py)
# compiles protocol/examples/c/md_book.c against libzmq and msgpack-c. Their
# Debian packages are installed here when missing and we are root; otherwise
# this says how to install them and that test skips.
C_DEPS := libzmq3-dev libmsgpack-dev

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

test: $(STAMP) test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/book_bench.py

bench-e2e: $(STAMP)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/python bench/e2e_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
