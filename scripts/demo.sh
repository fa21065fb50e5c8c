#!/usr/bin/env bash
# make demo: the whole of cryptokeys on one machine, offline.
#
# Starts a local Vault dev server with the plugin registered, applies
# examples/quickstart with the locally built provider, then walks through
# issuing, verifying, rotating and revoking keys with the real vault CLI,
# with `cryptokeys gateway` in front of an API letting a key through and
# refusing it within a second of its revocation.
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
gateway_pid=""
cleanup() {
  if [ -n "$gateway_pid" ]; then
    kill -TERM "$gateway_pid" 2>/dev/null || true
    wait "$gateway_pid" 2>/dev/null || true
  fi
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

step "cryptokeys gateway in front of the API (what nginx's auth_request, Caddy, Traefik or Envoy ask)"
gw_port=""
for p in $(seq 18181 18281); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then gw_port=$p; break; fi
done
[ -n "$gw_port" ] || { echo "no free port for the gateway"; exit 1; }
cat > "$work/gateway.hcl" <<HCL
mount         = "cryptokeys"
environment   = "prod"
listen        = "127.0.0.1:$gw_port"
poll_interval = "100ms"
route "GET /v1/market/*" {
  scopes = ["read"]
}
HCL
sed 's/^/    /' "$work/gateway.hcl"
echo '$ cryptokeys gateway -config gateway.hcl &'
"$bin/cryptokeys" gateway -config "$work/gateway.hcl" > "$work/gateway.log" 2>&1 &
gateway_pid=$!
gw="http://127.0.0.1:$gw_port"
for _ in $(seq 1 100); do
  curl -fs "$gw/readyz" >/dev/null 2>&1 && break
  kill -0 "$gateway_pid" 2>/dev/null || { cat "$work/gateway.log"; exit 1; }
  sleep 0.1
done
curl -fs "$gw/readyz" >/dev/null || { echo "the gateway did not get ready"; cat "$work/gateway.log"; exit 1; }
# authz asks the gateway as a proxy does; it prints the status and the
# X-Cryptokeys-* answer headers.
authz() {
  curl -s -o /dev/null -D - -H "Authorization: Bearer $1" \
    -H "X-Original-Method: GET" -H "X-Original-URI: /v1/market/btc-usd" "$gw/authz" |
    tr -d '\r' | awk 'NR == 1 { printf "HTTP %s", $2 } tolower($1) ~ /^x-cryptokeys-(code|key-id|role|scopes):$/ { printf "  %s %s", $1, $2 } END { print "" }'
}
echo '$ curl -H "Authorization: Bearer $new_key" -H "X-Original-URI: /v1/market/btc-usd" '"$gw/authz"
echo "gateway: $(authz "$new_key")"

step "Revoke the new key (incident response)"
show vault delete cryptokeys/keys/"$new_id" reason="demo revocation"
revoked_at=$(date +%s%N)
echo "new key now: $(vault write -field=code cryptokeys/verify api_key="$new_key")"
answer=""
while :; do
  answer=$(authz "$new_key")
  case "$answer" in "HTTP 200"*) ;; *) break ;; esac
  [ $(( $(date +%s%N) - revoked_at )) -lt 5000000000 ] || break
  sleep 0.02
done
took_ms=$(( ($(date +%s%N) - revoked_at) / 1000000 ))
echo "gateway: $answer   ($took_ms ms after the revocation)"
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
