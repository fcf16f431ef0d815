# ociforge developer targets.  Everything installs into a virtualenv (.venv),
# and `make test` installs everything it needs itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: venv install install-dev test-deps test test-dockerhub lint typecheck bench demo datasci clean

venv:
	PYTHON=$(PYTHON) sh scripts/bootstrap-venv.sh $(VENV)

install: venv
	$(PIP) -e .

install-dev: venv
	$(PIP) -e '.[dev,tables,sbom]'

# Debian tools the tests use (needs root and apt; without them those tests skip, except in CI).
test-deps:
	sh scripts/install-test-deps.sh

test: install-dev test-deps
	$(PY) -m pytest -q -p no:cacheprovider tests

test-dockerhub: install-dev
	OCIFORGE_TEST_DOCKERHUB=1 $(PY) -m pytest -q -p no:cacheprovider -m dockerhub tests

lint: install-dev
	$(PY) -m ruff check ociforge tests bench

typecheck: install-dev
	$(PY) -m mypy ociforge

bench: install-dev test-deps
	$(PY) bench/run.py

# The main job: export the example application to an image tarball (no registry, no Docker).
demo: install
	$(PY) -m ociforge export examples/hello -o hello.tar

# The second example: its database, wheel and virtual environment (offline; needs Debian
# 12's /usr/bin/python3.11 with venv, the Python of its base), then its export (which
# pulls that base from gcr.io: this step needs the network).
datasci: install
	python3 examples/datasci/prepare.py
	$(PY) -m ociforge export examples/datasci --with-files -o datasci.tar

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache hello.tar datasci.tar \
		examples/datasci/venv examples/datasci/dist examples/datasci/data/sales.db
