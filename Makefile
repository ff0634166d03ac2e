# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean image

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip -c constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/wheelfarm build recipes/ --out wheelhouse
	# The C fixture for Apple silicon, cross-built by zig: checked, never run here.
	$(BIN)/wheelfarm build recipes/fastadd.toml --target macosx_11_0_arm64 --out wheelhouse

test: $(STAMP)
	$(BIN)/ruff check wheelfarm tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -ra

lint: $(STAMP)
	$(BIN)/ruff check wheelfarm tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

# The local build image for the container executor (root, debootstrap, podman).
image:
	bash images/local/build.sh

clean:
	rm -rf $(VENV) .wheelfarm wheelhouse
