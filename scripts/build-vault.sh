#!/usr/bin/env bash
# Builds the Vault test server (bin/vault): the MPL-2.0 Vault 1.13.0, the
# last open-source release, from the Go module proxy. See DEVELOPERS.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bin/vault"
mkdir -p "$root/bin"
echo "==> building Vault 1.13.0 test server into bin/vault (about 5 minutes on a cold cache, more if its modules must be downloaded; built once)"
start=$SECONDS
cd "$root/tools/vault"
# A cold build is silent for minutes: count what `go build -v` reports
# (module downloads, then packages) and print a line now and then, plus
# every compiler error in full.
set +e
go build -v -o "$out.tmp" github.com/hashicorp/vault 2>&1 | {
  downloads=0 packages=0 last=$SECONDS
  while IFS= read -r line; do
    case "$line" in
      "go: downloading "*) downloads=$((downloads + 1)) ;;
      "#"* | *.go:[0-9]*) echo "$line" ;;
      *) packages=$((packages + 1)) ;;
    esac
    if (( SECONDS - last >= 20 )); then
      last=$SECONDS
      echo "    $((SECONDS - start))s: $downloads modules downloaded, $packages packages compiled"
    fi
  done
  echo "    $((SECONDS - start))s: $downloads modules downloaded, $packages packages compiled"
}
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ] || [ ! -x "$out.tmp" ]; then
  rm -f "$out.tmp"
  echo "Vault build failed (exit $status); see the errors above" >&2
  exit 1
fi
mv "$out.tmp" "$out"
echo "==> bin/vault built in $((SECONDS - start))s: $("$out" version)"
