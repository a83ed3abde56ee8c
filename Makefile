# The two commands a newcomer runs: `make demo` and `make test`. Both bootstrap .venv/ when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test venv clean sweep-example dp-example study

venv: $(STAMP)

# torch==2.13.0 goes first: any other spec resolves to the CUDA build and pulls gigabytes of wheels.
# face_recognition (the dlib tests' oracle) goes last with --no-deps: it requires the dlib source
# package, a long compile; dlib-bin from setup.py already provides the `dlib` module. The file-matcher
# tests' real weights come from npm packages (tests/leakguard/npm_files.py; skipped where npm cannot fetch).
$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[test]"
	$(PY) -m pip install --no-deps face_recognition==1.3.0
	$(PY) -m tests.leakguard.npm_files
	touch $(STAMP)

# Trains StyleGAN2 on SynthFaces at 32 px (CPU, about 10 minutes on 2 cores) into runs/synthfaces32-<n>/,
# evaluating leakage, membership and fidelity every 10 kimg, then audits the result. tools/demo_data.py
# makes the held-out sets, two matchers and the fidelity features on first use (cached after that) and
# prints the eval.* overrides that name them.
demo: $(STAMP)
	$(VENV)/bin/leakguard train --config configs/synthfaces32.yaml $$($(PY) tools/demo_data.py)
	$(PY) tools/demo_audit.py

# The sweep example (docs/sweeps.md): five 20-kimg trials on SynthFaces (non-private, identity-level DP at
# two noise levels, the regularizer at two weights), about 30 minutes on 2 cores; a rerun skips finished
# trials. Results and Pareto plots: runs/sweeps/synthfaces32-privacy/report.html.
sweep-example: $(STAMP)
	$(VENV)/bin/leakguard sweep run configs/sweeps/synthfaces32-privacy.yaml $$($(PY) tools/demo_data.py --regularizer)

# The DP example (docs/dp_example.md): a public model pretrained on public SynthFaces people, then four arms on
# 2,000 private people who differ from them — public-only, non-private fine-tune, DP fine-tune per person at
# epsilon 8 (2 seeds) and 1, DP from scratch — judged by a matcher no arm used. About 1.5 hours on 2 cores;
# a rerun skips what exists. Results: runs/dp-example/summary.md and grid_<arm>.png; then the gallery null (the
# arms' fakes against their training people and as many new people, a few minutes): runs/dp-example/gallery_null.md.
dp-example: $(STAMP)
	$(PY) tools/dp_example.py
	$(PY) tools/gallery_null.py

# The headline study (docs/study.md): every defence on a generator that leaks (people 0..49, person 0 with half the
# images), 60 kimg, three seeds, judged by a matcher no arm used; about 10-20 minutes per trial on 2 cores, 27
# trials; resumable (a rerun skips finished trials). Results: runs/sweeps/synthfaces32-study/study.md; then the
# gallery null (each trial's fakes against its training people and as many new people): gallery_null.md beside it.
study: $(STAMP)
	$(PY) tools/study.py
	$(PY) tools/study_gallery_null.py

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf out
