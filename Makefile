# unrolled: `make train` runs the main job, `make test` the test suite.
# Both install into .venv first (once; again when pyproject.toml changes).

VENV     ?= .venv
PY       := $(VENV)/bin/python
UV       := $(VENV)/bin/uv
STAMP    := $(VENV)/.installed
# This machine keeps a CPU build of torch in /opt/wheels; elsewhere PyPI's build is used.
FINDLINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
TORCH    ?= torch==2.13.0
ARGS     ?=

export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

.PHONY: install system-deps train test test-fast lint format bench data clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet uv
	$(UV) pip install --python $(PY) --compile-bytecode $(FINDLINKS) "$(TORCH)" -e '.[dev]'
	@# fastmri is the test oracle; its metadata asks for torchvision, which breaks this torch.
	$(UV) pip install --python $(PY) --compile-bytecode --no-deps fastmri==0.3.0
	touch $(STAMP)

train: install
	$(VENV)/bin/unrolled-train $(ARGS)

data: install
	$(VENV)/bin/unrolled-synth $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Debian packages the tests use as reference tools and real services (see .ci/debian-packages.txt).
system-deps:
	@bash .ci/install-debian-packages

test: lint system-deps
	$(VENV)/bin/pytest -n 2 --dist loadgroup --durations=15 tests --nbmake notebooks $(ARGS)

test-fast: install
	$(VENV)/bin/pytest -n 2 -m "not slow" $(ARGS)

bench: install
	$(PY) bench/run_all.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
