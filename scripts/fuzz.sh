#!/usr/bin/env bash
# Runs each fuzz target for FUZZTIME. A crash (a failing input written to
# testdata/fuzz) fails the run. Go's fuzzing engine sometimes ends a short
# run with "context deadline exceeded" while a worker is still minimizing a
# new input; that is the clock running out, not a finding, so it is
# reported and tolerated.
set -uo pipefail
fuzztime=${FUZZTIME:-10s}
status=0
for target in keyformat:FuzzParse keyformat:FuzzFind vaultplugin:FuzzVerifyRequest vaultplugin:FuzzSigningMessage; do
  pkg=./${target%%:*} name=${target##*:}
  out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 100x "$pkg" 2>&1)
  rc=$?
  echo "$out" | grep -v '^fuzz: elapsed' | tail -n 20
  if [ $rc -ne 0 ]; then
    if echo "$out" | grep -q 'Failing input written to\|panic:'; then
      echo "FAIL: $name found a failing input"; status=1
    elif echo "$out" | grep -q 'context deadline exceeded'; then
      echo "note: $name: fuzzing engine timed out at the end of a ${fuzztime} run (no failing input)"
    else
      echo "FAIL: $name"; status=1
    fi
  fi
done
exit $status
