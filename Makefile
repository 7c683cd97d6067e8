# pagetable: make demo | make test | make bench | make fuzz | make lint
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test bench fuzz lint qemu toolchain kernel clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "pagetable needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(BIN)/pagetable vectors generate --mode sv39 --seed 1 --out build/demo
	$(BIN)/pagetable vectors show build/demo
	$(BIN)/pagetable vectors check build/demo

# QEMU is the independent judge of the walker: install it from Debian when we are root, otherwise say what
# to install. Without it the QEMU tests skip, except under CI=true where they fail.
QEMU_PACKAGES := qemu-system-misc qemu-system-x86 qemu-system-arm
QEMU_TOOLS    := qemu-system-riscv64 qemu-system-riscv32 qemu-system-x86_64 qemu-system-aarch64

qemu:
	@missing=0; for tool in $(QEMU_TOOLS); do command -v $$tool >/dev/null 2>&1 || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(QEMU_PACKAGES) >/dev/null; \
	  else \
	    echo "QEMU is missing (the tests need $(QEMU_TOOLS)): install Debian/Ubuntu packages $(QEMU_PACKAGES)" \
	         "(sudo apt-get install $(QEMU_PACKAGES)); the QEMU differential tests need them."; \
	  fi; \
	fi

# GNU binutils assemble the stubs QEMU runs (pagetable/vectors/riscv/stub.S, pagetable/vectors/x86_64/stub.S and
# boot.S, pagetable/vectors/aarch64/stub.S): installed the same way; without them the QEMU tests skip, except under CI=true where they fail.
TOOLCHAIN_PACKAGES := binutils-riscv64-linux-gnu binutils-aarch64-linux-gnu binutils-x86-64-linux-gnu
TOOLCHAIN_TOOLS    := riscv64-linux-gnu-as aarch64-linux-gnu-as x86_64-linux-gnu-as

toolchain:
	@missing=0; for tool in $(TOOLCHAIN_TOOLS); do command -v $$tool >/dev/null 2>&1 || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TOOLCHAIN_PACKAGES) >/dev/null; \
	  else \
	    echo "GNU binutils are missing: install Debian/Ubuntu packages $(TOOLCHAIN_PACKAGES)" \
	         "(sudo apt-get install $(TOOLCHAIN_PACKAGES)); the QEMU differential tests need them."; \
	  fi; \
	fi

# Debian's Linux kernels that tests/test_dump_linux.py boots in QEMU: `apt-get download` of the x86-64 package (the arm64 one from deb.debian.org) into
# build/linux (or $$PAGETABLE_CACHE/linux), never installed, and its vmlinuz extracted there (pagetable/vectors/linux.py;
# apt's own cache is used first). Without it the test skips, saying what to install, except under CI=true where it fails.
kernel: $(STAMP)
	@$(BIN)/python -m pagetable.vectors.linux >/dev/null || true

lint: $(STAMP)
	$(BIN)/ruff check pagetable tests bench
	$(BIN)/mypy --strict

test: $(STAMP) qemu toolchain kernel lint
	$(BIN)/python -m pytest -q

# The long fuzz profile (tests/fuzzing.py): the same fuzz tests as `make test` runs, with many more cases.
fuzz: $(STAMP)
	PAGETABLE_FUZZ=long $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_fuzz_cli.py \
	    tests/test_fuzz_tables.py tests/test_fuzz_x86.py tests/test_fuzz_api.py tests/test_aspace.py tests/test_table.py \
	    tests/test_aarch64_table.py

# volatility3 (the side-by-side row, bench/volatility.py) lives in a bench-only venv of its own: the project
# never imports it (bench/vol3_mapping.py runs in that venv, in a subprocess), so it is neither a runtime
# dependency nor part of `make test`. Without it (no registry reachable) the bench still runs and its
# volatility3 row says how to install it.
BENCH_VENV  ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-volatility3
VOLATILITY3 ?= volatility3==2.28.2

$(BENCH_STAMP):
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check '$(VOLATILITY3)'
	@touch $@

bench: $(STAMP)
	@$(MAKE) --no-print-directory $(BENCH_STAMP) || echo "volatility3 could not be installed into $(BENCH_VENV):" \
	    "the bench runs without its side-by-side row"
	VOL3_PYTHON=$(BENCH_VENV)/bin/python $(BIN)/python bench/run.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache .hypothesis
