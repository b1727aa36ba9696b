# An image that serves one exported model with the light runtime: onnxruntime + numpy, no torch,
# no transformers (README, "Install: the full tool, or the light runtime").
#   emovox export RUN --out runs/model-onnx          # with the full install
#   docker build -t emovox-serve --build-arg MODEL=runs/model-onnx .
#   docker run --rm -p 8000:8000 emovox-serve        # the page at http://localhost:8000/, API at /v1/...
# Pass serve options after the image name, e.g. `docker run ... emovox-serve --workers 4`.
# `make image MODEL=runs/model-onnx` runs the build; without Docker Hub, `scripts/debian_base.sh` makes a
# local Debian bookworm base and `make image ... BASE=emovox-base:bookworm` builds on it (README, "Container").
# Any base with python3 (>= 3.10) and its venv module works: the runtime goes into a venv at /opt/emovox
# (Debian's own python3 refuses system-wide pip installs, PEP 668).
ARG BASE=python:3.11-slim
FROM ${BASE}
# the extras installed; `--build-arg EXTRAS=runtime,serve,formats` adds FFmpeg (PyAV, +104 MB) for m4a/mp4/webm uploads
ARG EXTRAS=runtime,serve

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/emovox/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# soundfile's wheel bundles libsndfile, so no system packages are needed; pip and setuptools leave the
# venv once the install is done (nothing at run time needs them)
RUN python3 -m venv /opt/emovox && pip install ".[${EXTRAS}]" && cd / && rm -rf /src \
    && pip uninstall -q -y pip setuptools && python -c "import emovox.cli" \
    && ! python -c "import torch" 2>/dev/null

ARG MODEL=model
COPY ${MODEL} /model
WORKDIR /
EXPOSE 8000
USER nobody
# nobody's home does not exist; onnxruntime keeps a small id file there (else a warning at each start)
ENV HOME=/tmp
ENTRYPOINT ["emovox", "serve", "/model", "--host", "0.0.0.0", "--port", "8000"]
