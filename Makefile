VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

BENCH_STAMP := $(VENV)/.bench-installed

# The lock (requirements/*.txt) is resolved from pyproject.toml for Python 3.11 on every platform
# (--universal); `make lock` after any change to [project] dependencies or extras.
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.8
LOCK_FLAGS := --quiet --universal --python-version 3.11 --custom-compile-command 'make lock'

.PHONY: run test lint venv clean bench lock docs

$(STAMP): pyproject.toml requirements/runtime.txt requirements/test.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/test.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/aftercare --config config.example.toml serve

# Two test processes, whole files to each (their module fixtures start once): most tests wait
# on real time (processes, timers), so two halve the suite. schemathesis' generated tests are not
# run by pytest-xdist's workers, so tests/test_openapi.py runs on its own after.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --ignore=tests/test_openapi.py
	$(PY) -m pytest -q tests/test_openapi.py

# Regenerate the lock; takes seconds (uv). The superset (bench.txt: every extra) is resolved
# first and constrains the other two, so a package has one version in all three. What is pinned
# stays pinned unless pyproject.toml asks for more; `make lock UPGRADE=--upgrade` takes the newest.
lock:
	test -x $(PY) || python3 -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install --quiet 'uv==$(UV_VERSION)'
	mkdir -p requirements
	$(UV) pip compile $(LOCK_FLAGS) $(UPGRADE) pyproject.toml --all-extras -o requirements/bench.txt
	$(UV) pip compile $(LOCK_FLAGS) pyproject.toml --extra test -c requirements/bench.txt \
	  -o requirements/test.txt
	$(UV) pip compile $(LOCK_FLAGS) pyproject.toml -c requirements/bench.txt -o requirements/runtime.txt

# The benchmarks of issue 5, with their peer (Celery on the local Redis): ~15 minutes.
$(BENCH_STAMP): $(STAMP) requirements/bench.txt
	$(PY) -m pip install --quiet -r requirements/bench.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) bench/run.py --concurrency 16,32

# ruff (the rules and the format), mypy, and the layer contract ([tool.importlinter] in
# pyproject.toml); .ci/run runs it before `make test`. tests/test_layers.py also runs the layer
# contract in `make test`, and shows that a planning → storage import breaks it.
lint: $(STAMP)
	$(VENV)/bin/ruff check service tests bench docs/hooks
	$(VENV)/bin/ruff format --check service tests bench docs/hooks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo

# The docs site (mkdocs.yml) into build/site, every link and anchor checked; tests/test_docs.py
# builds it the same way in `make test`. `$(VENV)/bin/mkdocs serve` serves it while you write.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) build *.db *.db-wal *.db-shm
