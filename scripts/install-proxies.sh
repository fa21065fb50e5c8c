#!/usr/bin/env bash
# Makes sure the proxies the gateway tests drive are installed: nginx and
# Caddy from the Debian packages (apt-get, as root or through sudo). If the
# distribution has no caddy package, Caddy is built from the Go module proxy
# into bin/caddy instead. Run by `make proxies` (and so by `make test`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
CADDY_VERSION=${CADDY_VERSION:-v2.10.2}

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "$root/bin/$1" ]; }

if have nginx && have caddy; then
  exit 0
fi
start=$SECONDS
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "nginx and caddy are needed by the gateway tests; install them (apt-get install nginx caddy) or run make as root" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get here: install nginx and caddy with your package manager (the gateway tests need both)" >&2
  exit 1
fi
pkgs=()
have nginx || pkgs+=(nginx)
want_caddy_pkg=0
if ! have caddy; then
  $sudo apt-get update -qq
  # (not `apt-cache ... | grep -q`: under pipefail grep's early exit fails the pipe)
  policy=$(apt-cache policy caddy 2>/dev/null || true)
  if [[ "$policy" == *"Candidate: "[0-9]* ]]; then
    pkgs+=(caddy)
    want_caddy_pkg=1
  fi
fi
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "==> installing ${pkgs[*]} for the gateway tests (apt-get)"
  [ "$want_caddy_pkg" = 1 ] || $sudo apt-get update -qq
  # The packages must not start system services on ports 80/443 here.
  $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
if ! have caddy; then
  echo "==> no caddy package: building Caddy $CADDY_VERSION from the Go module proxy into bin/caddy"
  mkdir -p "$root/bin"
  GOBIN="$root/bin" go install "github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION"
fi
echo "==> proxies ready in $((SECONDS - start))s: $(nginx -v 2>&1 || /usr/sbin/nginx -v 2>&1), caddy $( (command -v caddy >/dev/null && caddy version) || "$root/bin/caddy" version)"
