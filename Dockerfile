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
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY core/Cargo.toml core/
COPY server/Cargo.toml server/
COPY edge/Cargo.toml edge/
COPY tests/Cargo.toml tests/
COPY bench/Cargo.toml bench/
# Empty targets stand in for the sources so that only the dependencies build in this layer.
RUN for crate in core server edge tests bench; do \
      mkdir -p $crate/src && echo '' > $crate/src/lib.rs && echo 'fn main() {}' > $crate/src/main.rs; \
    done \
 && mkdir -p tests/benches && echo 'fn main() {}' > tests/benches/engines.rs \
 && cargo build --release --locked -p destino-server \
 && rm -rf core/src server/src edge/src tests/src bench/src tests/benches
COPY . .
# Newer than the stand-ins' build stamps, so cargo rebuilds our crates.
RUN touch core/src/lib.rs server/src/lib.rs server/src/main.rs edge/src/lib.rs \
 && cargo build --release --locked -p destino-server \
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
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so.1.31.1 \
    DESTINO_DEVICE=cuda \
    DESTINO_HTTP_PORT=8000
USER destino
EXPOSE 8000
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
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so.1.31.1 \
    DESTINO_HTTP_PORT=8000
USER destino
EXPOSE 8000
# Shell form, so the probe follows DESTINO_HTTP_PORT.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD destino-server probe "http://127.0.0.1:${DESTINO_HTTP_PORT:-8000}/v2/health/ready"
# SIGTERM (docker stop, Kubernetes) fails readiness and drains in-flight requests.
STOPSIGNAL SIGTERM
ENTRYPOINT ["destino-server"]
CMD ["serve"]
