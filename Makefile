# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean image emulation

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip -c constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/wheelfarm build recipes/ --out wheelhouse
	# Cross-built for aarch64 by zig; run under qemu where `make emulation` prepared it.
	$(BIN)/wheelfarm build recipes/fastadd.toml --target manylinux_2_17_aarch64 \
		--python cp39 --python cp311 --out wheelhouse
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

# The places where cross-built wheels run (root, once per machine, cached in
# /var/cache/wheelfarm/emulation): arm64 bullseye and bookworm rootfs under
# qemu-user, a musl CPython 3.11.
emulation:
	bash images/emulation/install.sh
	bash images/emulation/prepare.sh

clean:
	rm -rf $(VENV) .wheelfarm wheelhouse
