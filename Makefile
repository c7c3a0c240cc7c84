# The README's two commands: `make demo` and `make test`. Everything else here is what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Test files run on this many processes at once (pytest-xdist; a file's tests stay on one, in order):
# most tests wait on launchers, servers and browsers, so two keep 2 cores busy. TEST_WORKERS=0 runs in one.
TEST_WORKERS ?= 2
APT_PACKAGES := openmpi-bin libopenmpi-dev postgresql chromium chromium-driver cmake g++ slurm-wlm munge

.PHONY: demo test typecheck docs setup system-deps horovod bench clean

demo: setup
	$(PY) launch/demo.py

# mypy and the documentation site first: a type error or a broken link fails the test command like a failing test.
test: system-deps setup horovod typecheck docs
	$(PY) -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# mypy over em_dist/, as configured in pyproject.toml: strict outside em_dist/server/.
typecheck: setup
	$(PY) -m mypy

# The documentation site (docs/, mkdocs.yml) into build/site; --strict: a broken link or anchor fails.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0 numpy
	$(PIP) install -q -e '.[server,dev,mpi,progress,integrations]' 'torch==2.13.0'
	touch $@

# OpenMPI, PostgreSQL, Chromium and a one-node SLURM for the multi-process, database, browser and launcher tests.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

horovod: setup system-deps
	PYTHON=$(PY) bash .ci/horovod.sh

bench: setup
	$(PIP) install -q -e '.[bench]'

clean:
	rm -rf $(VENV) .em test-output
