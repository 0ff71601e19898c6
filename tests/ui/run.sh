#!/usr/bin/env bash
# The browser tests of the Integrations UI (GET /connect), run by tests/run.sh: installs what they
# need once — Debian's chromium (only when /usr/bin/chromium is missing), Playwright's Python
# client and pytest into a venv keyed by tests/ui/requirements.txt, axe-core from the npm
# registry into a cache directory — builds the binary, then drives the UI headless against a
# `hourbridge serve` and `hourbridge sandbox` the tests start themselves. Playwright never
# downloads a browser here: it launches /usr/bin/chromium. Screenshots: target/ui-screenshots/.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/hourbridge"
REQ=tests/ui/requirements.txt
VENV="$CACHE/venv-ui-$(sha256sum "$REQ" | cut -c1-12)"
AXE_VERSION=4.14.1
NODE_DIR="$CACHE/node"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing chromium (apt-get)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if [ ! -x "$VENV/bin/pytest" ] || ! cmp -s "$REQ" "$VENV/.requirements"; then
  echo "==> installing playwright and pytest into $VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
  cp "$REQ" "$VENV/.requirements"
fi
AXE="$NODE_DIR/node_modules/axe-core/axe.min.js"
if [ ! -f "$AXE" ] || ! grep -q "\"version\": \"$AXE_VERSION\"" "$NODE_DIR/node_modules/axe-core/package.json"; then
  echo "==> installing axe-core $AXE_VERSION into $NODE_DIR"
  mkdir -p "$NODE_DIR"
  npm install --prefix "$NODE_DIR" --silent --no-audit --no-fund --no-save "axe-core@$AXE_VERSION" >/dev/null
fi

echo "==> cargo build -p hourbridge (the binary the browser tests start)"
cargo build -p hourbridge --locked --quiet

echo "==> browser tests: headless Chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}')"
rm -rf target/ui-screenshots
set +e
HOURBRIDGE_BIN="$PWD/target/debug/hourbridge" HOURBRIDGE_AXE="$AXE" \
  "$VENV/bin/pytest" tests/ui -p no:cacheprovider -q -rfE --strict-markers
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "browser tests: pytest collected no test" >&2
  exit 1
fi
[ "$rc" -eq 0 ] || exit "$rc"
echo "==> screenshots: $(ls target/ui-screenshots | wc -l) in target/ui-screenshots/"
