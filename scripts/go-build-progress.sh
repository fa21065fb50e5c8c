#!/usr/bin/env bash
# go-build-progress.sh DIR OUT PACKAGE [go build flags...]
# Runs `go build -v` in DIR for PACKAGE into OUT (through OUT.tmp, so a
# failed build leaves no half binary), printing a progress line every 20 s:
# a cold build is silent for minutes otherwise. Compiler errors are printed
# in full. Used by build-vault.sh, build-tofu.sh and the GNUmakefile's
# builds of the project's own binaries.
set -euo pipefail
dir=$1 out=$2 pkg=$3
shift 3
start=$SECONDS
cd "$dir"
set +e
go build -v "$@" -o "$out.tmp" "$pkg" 2>&1 | {
  downloads=0 packages=0 last=$SECONDS
  while IFS= read -r line; do
    case "$line" in
      "go: downloading "*) downloads=$((downloads + 1)) ;;
      "#"* | *.go:[0-9]* | "go: "*) echo "$line" ;;
      *) packages=$((packages + 1)) ;;
    esac
    if (( SECONDS - last >= 20 )); then
      last=$SECONDS
      echo "    $((SECONDS - start))s: $downloads modules downloaded, $packages packages compiled"
    fi
  done
  # A quick (cached) build says nothing more.
  if (( SECONDS - start >= 10 )); then
    echo "    $((SECONDS - start))s: $downloads modules downloaded, $packages packages compiled"
  fi
}
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ] || [ ! -x "$out.tmp" ]; then
  rm -f "$out.tmp"
  echo "build of $pkg failed (exit $status); see the errors above" >&2
  exit 1
fi
mv "$out.tmp" "$out"
