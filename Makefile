# ociforge developer targets.  `make test` installs everything it needs itself.
PYTHON ?= python3
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: install install-dev test-deps test test-dockerhub lint typecheck bench demo clean

install:
	$(PYTHON) -m pip install $(PIP_FLAGS) -e .

install-dev:
	$(PYTHON) -m pip install $(PIP_FLAGS) -e '.[dev,tables]'

# Debian tools the interop tests read our outputs with (needs root and apt; skipped otherwise).
test-deps:
	sh scripts/install-test-deps.sh

test: install-dev test-deps
	$(PYTHON) -m pytest -q -p no:cacheprovider tests

test-dockerhub: install-dev
	OCIFORGE_TEST_DOCKERHUB=1 $(PYTHON) -m pytest -q -m dockerhub tests

lint: install-dev
	$(PYTHON) -m ruff check ociforge tests bench

typecheck: install-dev
	$(PYTHON) -m mypy ociforge

bench: install-dev test-deps
	$(PYTHON) bench/run.py

demo: install
	$(PYTHON) -m ociforge export examples/hello -o hello.tar

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache hello.tar
