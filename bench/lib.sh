# Shared by bench/run, bench/soak and bench/overload (source it from the repository root):
#   start_server [destino-server serve flags...]
# builds the release binaries, serves the four shared models from a temporary repository on
# a free port (gRPC on another), and sets $url, $grpc (host:port) and $server (the pid); the
# server is killed on exit.
set -euo pipefail
scripts/fetch-onnxruntime >/dev/null
cargo build --release --locked -p destino-server -p destino-bench 2>&1 | tail -1 >&2
shared="${DESTINO_SHARED_MODELS:-$(cd .. && pwd)/shared/models}"
repo="$(mktemp -d)"
server=""
trap 'if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi; rm -rf "$repo"' EXIT
for model in sklearn_digits_rf efficientnet_lite0 silero_vad ppocr_mobile_v2_cls; do
  mkdir -p "$repo/$model"
  ln -s "$shared/$model.onnx" "$repo/$model/model.onnx"
done
cp models/efficientnet_lite0/model.toml models/efficientnet_lite0/labels.txt "$repo/efficientnet_lite0/"

start_server() {
  log="$repo/server.log"
  grpc="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  target/release/destino-server serve --model-repository "$repo" --http-address 127.0.0.1 \
    --http-port 0 --grpc-port "${grpc##*:}" --log-level warn "$@" >"$log" 2>&1 &
  server=$!
  until grep -q '^ready:' "$log"; do sleep 0.2; kill -0 "$server"; done
  url="$(sed -n 's/^destino listening on //p' "$log")"
}
