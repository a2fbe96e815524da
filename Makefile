# The two quick-start commands: `make demo` (main job) and `make test` (whole suite).
# Both build a private virtual environment in .venv on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# Pinned here, not in setup.cfg: this machine has a small CPU build of torch 2.13.0 on disk. Users keep
# whatever torch (>=2.4) they have; override with `make TORCH_SPEC='torch==2.14.1' test`.
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo_output

.PHONY: demo test clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[all,test]"
	touch $@

demo: $(VENV)/.installed
	$(PY) -m ptychodus_torch_plugin simulate --output $(DEMO_DIR)/train.npz --seed 1
	$(PY) -m ptychodus_torch_plugin plugins > $(DEMO_DIR)/plugins.json
	@echo "demo outputs are in $(DEMO_DIR)/"

test: $(VENV)/.installed
	$(PY) -m pytest -n auto

clean:
	rm -rf $(DEMO_DIR) tmp .pytest_cache
