# The two quick-start commands: `make demo` (main job) and `make test` (whole suite).
# Both build a private virtual environment in .venv on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# Pinned here, not in setup.cfg: this machine has a small CPU build of torch 2.13.0 on disk. Users keep
# whatever torch (>=2.4) they have; override with `make TORCH_SPEC='torch==2.14.1' test`.
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo_output
DEMO_TRAIN_FLAGS ?= --gridsize 1 --channels 16,32,64 --max_epochs 30 --scheduler cosine --logger csv

.PHONY: demo test clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[all,test]"
	touch $@

# Main job on built-in simulated data: two scans of different random objects (train, unseen test),
# train a physics-informed network without ground truth, reconstruct the unseen scan, write pictures.
demo: $(VENV)/.installed
	$(PY) -m ptychodus_torch_plugin simulate --output $(DEMO_DIR)/train.npz --patch-size 32 --n-positions 1024 --nphotons 1e5 --seed 1
	$(PY) -m ptychodus_torch_plugin simulate --output $(DEMO_DIR)/test.npz --patch-size 32 --n-positions 256 --nphotons 1e5 --seed 2
	$(PY) -m ptychodus_torch_plugin train --train_data_file $(DEMO_DIR)/train.npz --test_data_file $(DEMO_DIR)/test.npz \
		--output_dir $(DEMO_DIR)/train $(DEMO_TRAIN_FLAGS)
	$(PY) -m ptychodus_torch_plugin reconstruct --model $(DEMO_DIR)/train --data_file $(DEMO_DIR)/test.npz \
		--output_dir $(DEMO_DIR)/reconstruct
	@echo "pictures: $(DEMO_DIR)/reconstruct/reconstruction.png, $(DEMO_DIR)/train/lightning_logs/version_*/loss.png"

test: $(VENV)/.installed
	$(PY) -m pytest -n auto

clean:
	rm -rf $(DEMO_DIR) tmp .pytest_cache
