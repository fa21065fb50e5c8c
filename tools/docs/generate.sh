#!/usr/bin/env bash
# Generates docs/ with tfplugindocs from templates/, examples/ and the
# provider's schema (make generate), or checks docs/ is current (--check).
# The schema comes from the locally built provider through Terraform's
# dev_overrides, so nothing is downloaded.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mode=${1:-generate}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/terraform.tfrc" <<TFRC
provider_installation {
  dev_overrides {
    "registry.terraform.io/cryptokeys/cryptokeys" = "$root/bin"
  }
  direct {}
}
TFRC
mkdir -p "$work/schema"
cat > "$work/schema/main.tf" <<'TF'
terraform {
  required_providers {
    cryptokeys = { source = "cryptokeys/cryptokeys" }
  }
}
TF
(cd "$work/schema" && TF_CLI_CONFIG_FILE="$work/terraform.tfrc" CHECKPOINT_DISABLE=1 HOME="$work" \
  terraform providers schema -json > "$work/schema.raw.json")
# tfplugindocs looks the provider up by its short name.
sed 's#"registry.terraform.io/cryptokeys/cryptokeys"#"cryptokeys"#' "$work/schema.raw.json" > "$work/schema.json"

out=docs
if [ "$mode" = "--check" ]; then
  out=.dev/docs-check
  rm -rf "$out"
fi
HOME="$work" CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE="$work/terraform.tfrc" \
  bin/tfplugindocs generate --provider-dir . --provider-name cryptokeys \
  --rendered-provider-name cryptokeys --providers-schema "$work/schema.json" \
  --rendered-website-dir "$out" >/dev/null
if [ "$mode" = "--check" ]; then
  if ! diff -r docs "$out" >/dev/null; then
    diff -r docs "$out" | head -n 40
    echo "docs/ is stale: run 'make generate' and commit the result" >&2
    rm -rf "$out"
    exit 1
  fi
  rm -rf "$out"
  echo "docs/ is current"
fi
