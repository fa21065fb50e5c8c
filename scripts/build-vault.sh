#!/usr/bin/env bash
# Builds the Vault test server (bin/vault): the MPL-2.0 Vault 1.13.0, the
# last open-source release, from the Go module proxy. See DEVELOPERS.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bin/vault"
mkdir -p "$root/bin"
echo "==> building Vault 1.13.0 test server into bin/vault (about 5 minutes on a cold cache, more if its modules must be downloaded; built once)"
start=$SECONDS
"$root/scripts/go-build-progress.sh" "$root/tools/vault" "$out" ./server
echo "==> bin/vault built in $((SECONDS - start))s: $("$out" version)"
