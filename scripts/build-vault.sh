#!/usr/bin/env bash
# Builds the Vault test server (bin/vault): the MPL-2.0 Vault 1.13.0, the
# last open-source release, from the Go module proxy. See DEVELOPERS.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bin/vault"
mkdir -p "$root/bin"
echo "==> building Vault 1.13.0 test server into bin/vault (about 5-8 minutes on a cold cache; cached afterwards)"
start=$(date +%s)
cd "$root/tools/vault"
# -v names each package as it is compiled: print a running count so a long
# cold build visibly makes progress.
go build -v -o "$out.tmp" github.com/hashicorp/vault 2>&1 | awk -v start="$start" '
  { n++; if (n % 100 == 0) { printf "    %d packages compiled, %ds\n", n, systime() - start; fflush() } }
  /^(#|.*\.go:[0-9]+)/ { print; fflush() }
'
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ] || [ ! -x "$out.tmp" ]; then
  echo "Vault build failed" >&2
  exit 1
fi
mv "$out.tmp" "$out"
echo "==> bin/vault built in $(( $(date +%s) - start ))s: $("$out" version)"
