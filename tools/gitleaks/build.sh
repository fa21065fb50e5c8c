#!/usr/bin/env bash
# Builds the real gitleaks (bin/gitleaks) from the Go module proxy, at the
# version tools/gitleaks/go.mod pins, for the test that runs
# examples/gitleaks/gitleaks.toml with it. See DEVELOPERS.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/bin/gitleaks"
mkdir -p "$root/bin"
cd "$root/tools/gitleaks"
ver=$(go list -m -f '{{.Version}}' github.com/zricethezav/gitleaks/v8)
echo "==> building gitleaks $ver into bin/gitleaks (about a minute on a cold cache; built once)"
start=$SECONDS
# go build -v names each package as it compiles it: print a line now and
# then so a cold build is not silent, plus every compiler error in full.
set +e
go build -v -trimpath -ldflags "-X github.com/zricethezav/gitleaks/v8/version.Version=$ver" \
  -o "$out.tmp" github.com/zricethezav/gitleaks/v8 2>&1 | {
  downloads=0 packages=0 last=$SECONDS
  while IFS= read -r line; do
    case "$line" in
      "go: downloading "*) downloads=$((downloads + 1)) ;;
      "#"* | *.go:[0-9]*) echo "$line" ;;
      *) packages=$((packages + 1)) ;;
    esac
    if (( SECONDS - last >= 10 )); then
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
  echo "gitleaks build failed (exit $status); see the errors above" >&2
  exit 1
fi
mv "$out.tmp" "$out"
echo "==> bin/gitleaks built in $((SECONDS - start))s: $("$out" version)"
