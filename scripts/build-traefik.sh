#!/usr/bin/env bash
# Builds the real Traefik proxy (bin/traefik) that the gateway tests run the
# shipped snippet examples/gateway/traefik/dynamic.yml under: Traefik from the
# Go module proxy, at the version tools/traefik/go.mod pins. See DEVELOPERS.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bin/traefik"
mkdir -p "$root/bin"
ver=$(cd "$root/tools/traefik" && go list -m -f '{{.Version}}' github.com/traefik/traefik/v3)
echo "==> building Traefik $ver into bin/traefik (built once: with empty Go caches about 9 CPU-minutes, its 350 modules downloaded first; 7 minutes on a busy 2-core machine)"
start=$SECONDS
# The module's webui/static holds only a placeholder (the web UI is built
# with npm upstream): the dashboard is empty, which the tests never open.
"$root/scripts/go-build-progress.sh" "$root/tools/traefik" "$out" github.com/traefik/traefik/v3/cmd/traefik \
  -trimpath -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=${ver#v}"
echo "==> bin/traefik built in $((SECONDS - start))s: $("$out" version | head -1)"
