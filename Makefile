# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_PIN := torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test bench install install-dev clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# the CPU torch wheel first, so no dependency pulls a CUDA build
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The tiny demo model gains nothing from a second thread, and on a shared machine torch's
# spinning threads made it 10x slower (measured): one thread keeps the demo within minutes.
demo: install
	OMP_NUM_THREADS=1 $(PY) -m emovox.demo_pipeline --out demo

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) -m benchmarks.run

clean:
	rm -rf demo .pytest_cache build dist
