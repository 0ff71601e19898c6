#!/usr/bin/env bash
# Sets up and runs Hourbridge's whole test suite on a fresh machine: installs the Python tools
# it needs into a cached venv (moto, cargo-lambda, zig, cfn-lint, checkov, SAM CLI), checks formatting
# and lints, checks the SAM template (cfn-lint, sam validate --lint, checkov), builds every
# Lambda with cargo lambda and sam build, starts moto_server on a free loopback port, runs every
# test with nextest (the AWS tests against moto), stops moto again, and runs the browser tests of
# the Integrations UI (tests/ui/run.sh installs chromium, Playwright and axe-core). Nothing else
# needs to be installed by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

REQ=tests/requirements.txt
# The tools live in a venv keyed by the requirements file, outside the checkout, so a second run
# on the same machine (a new clone included) does not reinstall them.
REQ_HASH=$(sha256sum "$REQ" | cut -c1-12)
VENV="${HOURBRIDGE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hourbridge/venv-$REQ_HASH}"
if [ ! -x "$VENV/bin/moto_server" ] || ! cmp -s "$REQ" "$VENV/.requirements"; then
  echo "==> installing test tools into $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
  cp "$REQ" "$VENV/.requirements"
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

export PATH="$VENV/bin:$PATH"
echo "==> infra: cfn-lint, sam validate --lint, checkov"
cfn-lint infra/template.yaml
sam validate --lint -t infra/template.yaml --region eu-west-1
BC_SKIP_MAPPING=TRUE checkov --config-file infra/.checkov.yaml -f infra/template.yaml
# sam build runs `cargo lambda build --release` (x86_64, provided.al2023) in every function's
# directory: that is the packaging check. Here the release profile trades link-time
# optimisation for build time; a deploy builds with the profile in Cargo.toml.
echo "==> sam build: cargo lambda build --release for every function (offline)"
# SAM runs cargo lambda in each function's directory with CARGO_TARGET_DIR=target, relative to
# it: without these links every function would compile the whole dependency tree on its own.
for f in $(ls functions); do
  [ -e "functions/$f/target" ] || ln -s ../../target "functions/$f/target"
done
CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 SAM_CLI_TELEMETRY=0 \
  sam build -t infra/template.yaml --build-dir target/sam-build --beta-features
for b in target/sam-build/*/bootstrap; do
  printf '    %-24s %s bytes\n' "$(basename "$(dirname "$b")")" "$(stat -c %s "$b")"
done

mkdir -p target
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "==> starting moto_server on 127.0.0.1:$PORT"
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >target/moto.log 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true' EXIT
python3 - "$PORT" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/moto-api/"
for _ in range(300):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("moto_server did not start; see target/moto.log")
PY

export TEST_AWS_ENDPOINT="http://127.0.0.1:$PORT"
export HOURBRIDGE_REQUIRE_MOTO=1
export AWS_EC2_METADATA_DISABLED=true
echo "==> cargo nextest run"
cargo nextest run --workspace --locked --profile ci

# The Integrations UI in headless Chromium (Debian's chromium, Playwright's Python client,
# axe-core): installs what it needs once, then starts its own server and sandboxes.
bash tests/ui/run.sh
