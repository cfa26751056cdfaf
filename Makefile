# The README's two commands: `make reproduce` and `make test`. Both start from nothing but Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# auto: the real DCASE2020 subset where Zenodo answers (fetched once into data/), else synthetic; or real | synthetic
DATA    ?= auto
DEVICE  ?= cpu
ARGS    ?=

.PHONY: reproduce test lint venv lab notebooks-sync clean-results gpu-check

venv: $(STAMP)

# Re-install whenever pyproject.toml changes; the stamp is written only after pip succeeds. --no-cache-dir: the CUDA
# build of torch brings some 3 GB of wheels that pip would otherwise keep in ~/.cache/pip beside the 6 GB venv.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-cache-dir --upgrade pip
	$(PY) -m pip install --quiet --no-cache-dir -e '.[dev]'
	touch $(STAMP)

# The main job: the whole notebook sequence, writing results/: on the real DCASE2020 subset where Zenodo
# answers (`asdlib download --subset small`, once), else on the embedded synthetic dataset (DATA=... forces either).
# Where the 93 real DCASE2020 clips lie beside the checkout, notebooks 01-02 also run on them
# (results/real_mini/), so real machine sounds can be compared with the synthetic ones; the
# site (results/html/index.html) is then rebuilt so that it links the real-clip pages too.
MINI ?= ../shared/data/dcase2020-mini
reproduce: $(STAMP)
	$(PY) -m asdlib reproduce --data $(DATA) --device $(DEVICE) $(ARGS)
	@if [ -d "$(MINI)" ]; then \
	  $(PY) -m asdlib reproduce --data-root $(MINI) --profile smoke --device $(DEVICE) \
	    --only 01_data_exploration,02_feature_extraction --results-dir results/real_mini --work-dir runs/real_mini \
	  && $(PY) -m asdlib.study.site results; \
	else echo "($(MINI) not found: skipping the real-clip exploration)"; fi

test: $(STAMP)
	$(PY) -m pytest -n auto --dist loadgroup $(ARGS)

# The CUDA path in one go (at most 8 minutes on one GPU): gpu tests, bench of every model, E2 at full size
# with a resume check, peak memory, the full profile's time extrapolated; writes $(GPU_OUT)/gpu_check.json.
# No venv prerequisite: a GPU machine without network runs it with .venv/bin/python if present, else python3.
GPU_OUT ?= $(or $(OUT),results/gpu_check)
gpu-check:
	bash benchmarks/gpu_check.sh $(GPU_OUT) $(ARGS)

# Correctness and import order only (ruff.toml); no style rules.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

# Regenerate the .ipynb files from their paired .py sources (the .py files are the source of truth).
notebooks-sync: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/*.py
