# biotwin: two commands do everything on a fresh Debian machine (as root):
#   make demo   set up, then run the quickstart notebook headless and print its key numbers
#   make test   set up, then run the whole test suite (notebooks included)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.biotwin-installed
EXTRAS := solver,lab,test,dev,browser

.PHONY: setup system-deps python-env solver demo test test-fast lab clean

setup: system-deps python-env solver

system-deps:
	@sh scripts/system-deps.sh

python-env: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "biotwin needs Python >= 3.11, $(PYTHON) is " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $(STAMP)

solver: $(STAMP)
	$(BIN)/biotwin setup-solver

demo: setup
	$(BIN)/biotwin notebooks run --only notebooks/00_quickstart.ipynb --out out --table

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations=25

test-fast: python-env
	$(BIN)/python -m pytest -m unit -q

lab: setup
	$(BIN)/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/

clean:
	rm -rf $(VENV) out .pytest_cache
