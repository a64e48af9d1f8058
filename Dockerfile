# destino-server in a container. Targets:
#   runtime (default)  CPU: ONNX Runtime from the official PyPI wheel, sha256-checked
#   cuda               GPU: onnxruntime-gpu (PyPI) on NVIDIA's CUDA 13 + cuDNN 9 runtime image,
#                      CUDA by default (run with --gpus all; falls back to CPU without a GPU
#                      unless `serve --require-gpu`)
# The model repository is baked in at /models (override with a volume or AZUREML_MODEL_DIR).
#   docker build -t destino .                   docker build --target cuda -t destino:cuda .
#   docker run -p 8000:8000 destino             docker run -v $PWD/models:/models ...
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
ARG CUDA_IMAGE=docker.io/nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04

# --- build: dependencies first (a layer reused while only our sources change), then ours ---
# cargo-chef derives that layer from the workspace itself (every member, target and
# `.cargo/config.toml`), so adding a crate, a bench or a binary never touches this file.
# scripts/dockerfile-check runs the same planning on every `scripts/test`.
FROM ${RUST_IMAGE} AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked -p destino-server --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p destino-server \
 && cp target/release/destino-server /usr/local/bin/

# --- ONNX Runtime, fetched by the script the README uses: CPU and GPU builds ---
FROM ${BASE_IMAGE} AS onnxruntime
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts/fetch-onnxruntime scripts/
RUN PIP_BREAK_SYSTEM_PACKAGES=1 scripts/fetch-onnxruntime cpu

FROM onnxruntime AS onnxruntime-cuda
# CUDA and cuDNN are the base image's; only the runtime and its CUDA provider come from here.
RUN PIP_BREAK_SYSTEM_PACKAGES=1 ORT_CUDA_LIBS=system scripts/fetch-onnxruntime cuda

# --- GPU image (before the CPU one: the last stage is the default target) ---
FROM ${CUDA_IMAGE} AS cuda
RUN groupadd --system destino && useradd --system --gid destino --home-dir /nonexistent destino
COPY --from=builder /usr/local/bin/destino-server /usr/local/bin/destino-server
COPY --from=onnxruntime-cuda /src/.onnxruntime/cuda/ /opt/onnxruntime/
COPY models /models
WORKDIR /
# libonnxruntime.so: the fetch script's link to the versioned library it extracted.
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so \
    DESTINO_DEVICE=cuda \
    DESTINO_HTTP_PORT=8000
USER destino
# HTTP, and gRPC (--grpc-port; 0 turns it off).
EXPOSE 8000 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD destino-server probe "http://127.0.0.1:${DESTINO_HTTP_PORT:-8000}/v2/health/ready"
STOPSIGNAL SIGTERM
ENTRYPOINT ["destino-server"]
CMD ["serve"]

# --- CPU image ---
FROM ${BASE_IMAGE} AS runtime
RUN groupadd --system destino && useradd --system --gid destino --home-dir /nonexistent destino
COPY --from=builder /usr/local/bin/destino-server /usr/local/bin/destino-server
COPY --from=onnxruntime /src/.onnxruntime/cpu/ /opt/onnxruntime/
COPY models /models
# The repository is `models` relative to / unless AZUREML_MODEL_DIR or
# DESTINO_MODEL_REPOSITORY says otherwise.
WORKDIR /
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so \
    DESTINO_HTTP_PORT=8000
USER destino
# HTTP, and gRPC (--grpc-port; 0 turns it off).
EXPOSE 8000 8001
# Shell form, so the probe follows DESTINO_HTTP_PORT.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD destino-server probe "http://127.0.0.1:${DESTINO_HTTP_PORT:-8000}/v2/health/ready"
# SIGTERM (docker stop, Kubernetes) fails readiness and drains in-flight requests.
STOPSIGNAL SIGTERM
ENTRYPOINT ["destino-server"]
CMD ["serve"]
