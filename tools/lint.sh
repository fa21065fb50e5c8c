#!/usr/bin/env bash
# Static checks for the main module: go vet, staticcheck and gosec, each
# exiting non-zero on any finding. make test and make lint call it.
#
# staticcheck and gosec are pinned and installed from the Go module proxy
# into $(go env GOPATH)/bin when that version is not there yet.
#
# gosec scans test code too (-tests): tests launch Vault and Terraform and
# handle real keys. There are no global exclusions. A finding that is not a
# bug is justified where it is, as
#     // #nosec G204 -- why this is safe
# and the run refuses a #nosec without a rule ID or without a reason.
set -euo pipefail

STATICCHECK_VERSION=v0.8.2   # staticcheck 2026.2.2
GOSEC_VERSION=v2.30.0

cd "$(dirname "$0")/.."
bindir="$(go env GOPATH)/bin"

# ensure TOOL MODULE VERSION installs MODULE/cmd/TOOL@VERSION unless the
# binary in $bindir was built from exactly that version.
ensure() {
	local tool=$1 pkg=$2 version=$3 have=""
	if [[ -x "$bindir/$tool" ]]; then
		have=$(go version -m "$bindir/$tool" 2>/dev/null | awk '$1 == "mod" { print $3; exit }')
	fi
	if [[ "$have" != "$version" ]]; then
		echo "==> installing $tool $version into $bindir"
		GOBIN="$bindir" GOFLAGS= go install "$pkg@$version"
	fi
}
ensure staticcheck honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION"
ensure gosec github.com/securego/gosec/v2/cmd/gosec "$GOSEC_VERSION"

status=0
echo "==> go vet"
go vet ./... || status=1
echo "==> staticcheck $STATICCHECK_VERSION"
"$bindir/staticcheck" ./... || status=1
echo "==> gosec $GOSEC_VERSION"
"$bindir/gosec" -quiet -fmt text -color=false -tests -exclude-generated \
	-nosec-require-rules -nosec-require-justification ./... || status=1

if [[ $status -ne 0 ]]; then
	echo "lint: findings above" >&2
fi
exit $status
