#!/usr/bin/env bash
# make dev: a local Vault with the engine mounted at cryptokeys/, until Ctrl-C.
# bin/devvault (built by make) runs it with every file under .dev/, and
# stops Vault and its plugin on Ctrl-C or when it is itself killed.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bin/devvault -dir .dev -mount cryptokeys "$@"
