# The two commands: `make up` installs and runs the embedded system; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install up test fuzz-deep lint protos check-protos bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(VENV)/bin/carbon up

# One pytest-xdist worker per core, at most two: two workers' tests together hold at most ~50 PostgreSQL connections,
# within PostgreSQL's default limit of 100 (docs/adr/0009-test-databases.md). Work stealing: a worker that runs out of
# tests takes half of the other's queue, so a queue of long process-starting tests does not finish alone at the end
# (docs/adr/0020-test-suite-time.md).
TEST_WORKERS ?= --numprocesses=auto --maxprocesses=2 --dist=worksteal
# The tests cache bytecode even where the environment says not to (PYTHONDONTWRITEBYTECODE, set on some CI images and
# containers): the suite starts a few hundred Python processes that import the same modules, and pytest rewrites the
# assertions of every test module in each worker; uncached, each of them compiles the sources again
# (docs/adr/0027-test-suite-time-cheaper-process-starts.md). The caches go where git ignores them (__pycache__/).
TEST_PY := env -u PYTHONDONTWRITEBYTECODE $(PY)

test: $(STAMP)
	$(TEST_PY) -m pytest $(TEST_WORKERS) $(PYTEST_ARGS)

# Every gRPC method and HTTP operation fuzzed with 200 examples instead of make test's 10 and 6: nightly, or after
# changing a request message or its validation (docs/adr/0024-test-suite-time-fuzz-and-processes.md).
FUZZ_DEEP_EXAMPLES ?= 200

fuzz-deep: $(STAMP)
	CARBON_FUZZ_EXAMPLES=$(FUZZ_DEEP_EXAMPLES) $(TEST_PY) -m pytest $(TEST_WORKERS) tests/faults/test_fuzz.py tests/ops_api/test_fuzz.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

protos: $(STAMP)
	$(PY) scripts/gen_protos.py

# Fails when gen/ is not what the protos generate.
check-protos: $(STAMP)
	$(PY) scripts/gen_protos.py >/dev/null
	git diff --exit-code --stat -- gen && test -z "$$(git status --porcelain -- gen)"

bench: $(STAMP)
	for b in bench/bench_*.py; do case $$b in *_support.py) continue;; esac; echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache data
