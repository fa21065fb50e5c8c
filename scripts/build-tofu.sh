#!/usr/bin/env bash
# Builds the OpenTofu CLI (bin/tofu) that make test runs the acceptance tests
# and the examples under, besides Terraform: OpenTofu 1.12.6 from the Go
# module proxy, through the tools module tools/tofu. See DEVELOPERS.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bin/tofu"
mkdir -p "$root/bin"
echo "==> building OpenTofu 1.12.6 into bin/tofu (built once: with empty Go caches about 7 CPU-minutes, its modules downloaded first; 12 minutes on a busy 2-core machine)"
start=$SECONDS
# version.dev=no: report 1.12.6, as a release does, not 1.12.6-dev.
"$root/scripts/go-build-progress.sh" "$root/tools/tofu" "$out" github.com/opentofu/opentofu/cmd/tofu \
  -trimpath -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no"
echo "==> bin/tofu built in $((SECONDS - start))s: $(TF_CLI_CONFIG_FILE= "$out" version | head -1)"
