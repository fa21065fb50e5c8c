#!/usr/bin/env bash
# make dev: a local Vault with the engine mounted at cryptokeys/, until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./tools/devvault -dir .dev -mount cryptokeys "$@"
