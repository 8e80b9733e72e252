VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: run test lint venv clean bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/aftercare --config config.example.toml serve

test: $(STAMP)
	$(PY) -m pytest -q

# The benchmarks of issue 5, with their peer (Celery on the local Redis): ~15 minutes.
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) bench/run.py --concurrency 16,32

lint: $(STAMP)
	$(VENV)/bin/ruff check service tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) *.db *.db-wal *.db-shm
