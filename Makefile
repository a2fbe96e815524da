# The two quick-start commands: `make demo` (main job) and `make test` (whole suite).
# Both build a private virtual environment in .venv on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# Pinned here, not in setup.cfg: this machine has a small CPU build of torch 2.13.0 on disk. Users keep
# whatever torch (>=2.4) they have; override with `make TORCH_SPEC='torch==2.14.1' test`.
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo_output
# PtychoPINN's own lines sample at N = 32 (zone-plate probe, raster at N/16, 1e9 photons): the data on which
# the network, trained briefly without ground truth, reconstructs an unseen object (docs/findings.md DEMO-001).
DEMO_TRAIN_FLAGS ?= --gridsize 2 --max-epochs 24 --scheduler cosine --logger csv --quiet
DEMO_SIM ?= --patch-size 32 --object paperlines --probe zoneplate --scan raster --step 2 --nphotons 1e9

.PHONY: demo test clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[all,test]"
	touch $@

# Main job on built-in simulated data: scans of three different random objects (two to train on, one
# unseen), train a physics-informed network without ground truth, then reconstruct the unseen scan with the
# network (one pass), the iterative solver and both together, side by side with their scores and times.
demo: $(VENV)/.installed
	$(PY) -m ptychodus_torch_plugin simulate --output $(DEMO_DIR)/train1.npz $(DEMO_SIM) --n-positions 400 --seed 1
	$(PY) -m ptychodus_torch_plugin simulate --output $(DEMO_DIR)/train2.npz $(DEMO_SIM) --n-positions 400 --seed 2
	$(PY) -m ptychodus_torch_plugin simulate --output $(DEMO_DIR)/test.npz $(DEMO_SIM) --n-positions 400 --seed 3
	$(PY) -m ptychodus_torch_plugin train --train-data-file $(DEMO_DIR)/train1.npz $(DEMO_DIR)/train2.npz \
		--test-data-file $(DEMO_DIR)/test.npz --output-dir $(DEMO_DIR)/train $(DEMO_TRAIN_FLAGS)
	$(PY) -m ptychodus_torch_plugin compare --model $(DEMO_DIR)/train --data-file $(DEMO_DIR)/test.npz \
		--output-dir $(DEMO_DIR)/compare --epochs 40 --quiet
	@echo "picture: $(DEMO_DIR)/compare/comparison.png (pinn, iterative, pinn+iterative and the truth, with scores)"
	@cat $(DEMO_DIR)/compare/comparison.json

test: $(VENV)/.installed
	$(PY) -m pytest -n auto

clean:
	rm -rf $(DEMO_DIR) tmp .pytest_cache
