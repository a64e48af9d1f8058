# Shared by bench/run, bench/soak and bench/overload (source it from the repository root):
#   start_server [destino-server serve flags...]
# builds the release binaries, serves the shared models (and the text model with its
# tokenizer) from a temporary repository on
# a free port (gRPC on another), and sets $url, $grpc (host:port) and $server (the pid); the
# server is killed on exit.
set -euo pipefail
scripts/fetch-onnxruntime >/dev/null
# The server alone, as it ships: built with the bench, cargo would unify its features.
cargo build --release --locked -p destino-server 2>&1 | tail -1 >&2
cargo build --release --locked -p destino-bench 2>&1 | tail -1 >&2
shared="${DESTINO_SHARED_MODELS:-$(cd .. && pwd)/shared/models}"
repo="$(mktemp -d)"
server=""
trap 'if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi; rm -rf "$repo"' EXIT
for model in sklearn_digits_rf efficientnet_lite0 silero_vad ppocr_mobile_v2_cls; do
  mkdir -p "$repo/$model"
  ln -s "$shared/$model.onnx" "$repo/$model/model.onnx"
done
cp models/efficientnet_lite0/model.toml models/efficientnet_lite0/labels.txt "$repo/efficientnet_lite0/"
# A text model: the sentence embedder with its tokenizer.
mkdir -p "$repo/paraphrase_minilm_l3"
ln -s "$shared/paraphrase_minilm_l3.onnx" "$repo/paraphrase_minilm_l3/model.onnx"
ln -s "$shared/paraphrase_minilm_l3.tokenizer.json" "$repo/paraphrase_minilm_l3/tokenizer.json"

start_server() {
  log="$repo/server.log"
  grpc="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  target/release/destino-server serve --model-repository "$repo" --http-address 127.0.0.1 \
    --http-port 0 --grpc-port "${grpc##*:}" --log-level warn "$@" >"$log" 2>&1 &
  server=$!
  until grep -q '^ready:' "$log"; do sleep 0.2; kill -0 "$server"; done
  url="$(sed -n 's/^destino listening on //p' "$log")"
}

# start_static BODY_FILE: nginx from Debian answering every request with BODY_FILE's bytes
# (as JSON) on a free port, one worker per core: the ceiling of any HTTP server on this
# machine. Sets $static_url; nginx is stopped on exit.
start_static() {
  scripts/system-packages nginx
  local body dir port
  body="$(cat "$1")"
  case "$body" in *"'"* | *'\'* | *'$'*) echo "start_static: body needs escaping" >&2; return 1 ;; esac
  dir="$repo/nginx"
  mkdir -p "$dir/logs"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  cat >"$dir/nginx.conf" <<CONF
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  server {
    listen 127.0.0.1:$port;
    location / { default_type application/json; return 200 '$body'; }
  }
}
CONF
  /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf"
  trap 'if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi; /usr/sbin/nginx -p "'"$dir"'" -c "'"$dir"'/nginx.conf" -s stop 2>/dev/null || true; rm -rf "$repo"' EXIT
  static_url="http://127.0.0.1:$port"
}

# wrk_rps URL BODY_FILE CONNECTIONS SECONDS: requests per second of wrk (one thread) POSTing
# BODY_FILE as JSON to URL over CONNECTIONS connections; non-2xx answers fail the run.
wrk_rps() {
  scripts/system-packages wrk
  local script="$repo/post.lua"
  cat >"$script" <<LUA
local f = io.open("$2", "rb"); wrk.body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.stderr:write(string.format("non2xx=%d errors=%d\\n", summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
  local out
  out="$(wrk -t1 -c"$3" -d"$4"s -s "$script" "$1" 2>"$repo/wrk.err")"
  if ! grep -q '^non2xx=0 errors=0' "$repo/wrk.err"; then
    echo "wrk against $1 saw failures: $(cat "$repo/wrk.err")" >&2
    return 1
  fi
  sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out" | cut -d. -f1
}
