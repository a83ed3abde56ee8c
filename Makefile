# The two commands a newcomer runs: `make demo` and `make test`. Both bootstrap .venv/ when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test venv clean

venv: $(STAMP)

# torch==2.13.0 goes first: any other spec resolves to the CUDA build and pulls gigabytes of wheels.
$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[test]"
	touch $(STAMP)

# Trains StyleGAN2 on SynthFaces at 32 px (CPU, about 10 minutes on 2 cores) into runs/synthfaces32-<n>/.
demo: $(STAMP)
	$(VENV)/bin/leakguard train --config configs/synthfaces32.yaml

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf out
