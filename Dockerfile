# An image that serves one exported model with the light runtime: onnxruntime + numpy, no torch,
# no transformers (README, "Install: the full tool, or the light runtime").
#   emovox export RUN --out runs/model-onnx          # with the full install
#   docker build -t emovox-serve --build-arg MODEL=runs/model-onnx .
#   docker run --rm -p 8000:8000 emovox-serve        # the page at http://localhost:8000/, API at /v1/...
# Pass serve options after the image name, e.g. `docker run ... emovox-serve --workers 4`.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# soundfile's wheel bundles libsndfile, so no system packages are needed
RUN pip install '.[runtime,serve]' && rm -rf /src && python -c "import emovox.cli" \
    && ! python -c "import torch" 2>/dev/null

ARG MODEL=model
COPY ${MODEL} /model
WORKDIR /
EXPOSE 8000
USER nobody
ENTRYPOINT ["emovox", "serve", "/model", "--host", "0.0.0.0", "--port", "8000"]
