#!/usr/bin/env bash
# make demo: the whole of cryptokeys on one machine, offline.
#
# Starts a local Vault dev server with the plugin registered, applies
# examples/quickstart with the locally built provider, then walks through
# issuing, verifying, rotating and revoking keys with the real vault CLI.
# Everything it writes stays under .dev/demo; it stops what it started
# unless DEMO_KEEP=1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin="$root/bin"
work="$root/.dev/demo"
rm -rf "$work"
mkdir -p "$work/home"
# Nothing of the demo lands in the user's home: not Terraform's checkpoint
# files, not a vault token helper file.
export HOME="$work/home" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 NO_COLOR=1
export PATH="$bin:$PATH"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

vault_pid=""
cleanup() {
  if [ -n "$vault_pid" ] && [ "${DEMO_KEEP:-0}" != 1 ]; then
    kill -INT "$vault_pid" 2>/dev/null || true
    wait "$vault_pid" 2>/dev/null || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT

step "Starting a local Vault dev server with vault-plugin-secrets-cryptokeys registered"
"$bin/devvault" -dir "$work" -mount "" -env-file "$work/env" > "$work/devvault.log" 2>&1 &
vault_pid=$!
for _ in $(seq 1 300); do
  [ -s "$work/env" ] && break
  kill -0 "$vault_pid" 2>/dev/null || { cat "$work/devvault.log"; exit 1; }
  sleep 0.2
done
[ -s "$work/env" ] || { echo "Vault did not start"; cat "$work/devvault.log"; exit 1; }
# shellcheck disable=SC1091
source "$work/env"
plugin_version=$("$bin/vault-plugin-secrets-cryptokeys" -version)
echo "VAULT_ADDR=$VAULT_ADDR, plugin $plugin_version"

step "terraform apply examples/quickstart (engine, three environments, a key each) with the local provider"
cp -R examples/quickstart "$work/quickstart"
cat > "$work/terraform.tfrc" <<TFRC
provider_installation {
  dev_overrides {
    "registry.terraform.io/cryptokeys/cryptokeys" = "$bin"
  }
  direct {}
}
TFRC
export TF_CLI_CONFIG_FILE="$work/terraform.tfrc"
(cd "$work/quickstart" && terraform apply -auto-approve -input=false -var "plugin_version=$plugin_version" 2>&1 | grep -v -i "provider development overrides\|dev_overrides\|^ *- cryptokeys/cryptokeys in\|The behavior may therefore\|published releases\|^│ *$\|^╷\|^╵" )
(cd "$work/quickstart" && show terraform output key_ids)

step "Issue a key for prod with the vault CLI"
echo '$ vault read cryptokeys/creds/prod-trader'
vault read cryptokeys/creds/prod-trader | tee "$work/creds.txt"
key=$(awk '$1 == "api_key" { print $2 }' "$work/creds.txt")
key_id=$(awk '$1 == "key_id" { print $2 }' "$work/creds.txt")
rm -f "$work/creds.txt"
echo "(the key is shown once, above; from here on the demo prints only its key_id: $key_id)"

step "An API gateway in prod verifies it"
echo '$ vault write cryptokeys/verify api_key=$key environment=prod scopes=read'
vault write cryptokeys/verify api_key="$key" environment=prod scopes=read

step "The same key presented to staging is refused"
vault write cryptokeys/verify api_key="$key" environment=staging | grep -E '^(valid|code|message) '

step "Rotate it with a 30-second overlap"
new_key=$(vault write -field=api_key cryptokeys/keys/"$key_id"/rotate grace=30s)
new_id=$(vault write -field=key_id cryptokeys/verify api_key="$new_key")
echo "old $key_id -> new $new_id"
echo "old key now: $(vault write -field=code cryptokeys/verify api_key="$key")   new key: $(vault write -field=code cryptokeys/verify api_key="$new_key")"

step "Revoke the new key (incident response)"
show vault delete cryptokeys/keys/"$new_id" reason="demo revocation"
echo "new key now: $(vault write -field=code cryptokeys/verify api_key="$new_key")"
vault read cryptokeys/keys/"$new_id" | grep -E '^(status|revoked_at|revoked_by|revoke_reason) '

step "Done"
if [ "${DEMO_KEEP:-0}" = 1 ]; then
  cat <<DONE
Vault keeps running (DEMO_KEEP=1): $VAULT_ADDR (dev server, in memory, pid $vault_pid; log under $work)
Terraform:  $work/quickstart (state there), provider from $bin
Try:        export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=$VAULT_TOKEN PATH=$bin:\$PATH
            vault list cryptokeys/keys ; vault path-help cryptokeys/verify
Stop it:    kill -INT $vault_pid
DONE
  trap - EXIT
else
  cat <<DONE
Stopping Vault and removing $work: nothing of the demo keeps running.
To keep it running and try your own commands: DEMO_KEEP=1 make demo
(or make dev, for a Vault of your own with the engine at cryptokeys/).
DONE
fi
