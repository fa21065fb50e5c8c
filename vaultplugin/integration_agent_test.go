package vaultplugin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
	"github.com/hashicorp/vault/api"
)

// Issue 19 item 1: Vault Agent (the `vault agent` of Vault 1.13, whose
// consul-template is v0.29.5) delivers keys. It logs in with a token file
// holding a token of examples/policies/app-agent.hcl, renders
// {{ with secret "<mount>/creds/<role>" }}{{ .Data.api_key }}{{ end }} into
// a file, renews the lease, and at the role's max_ttl renders a new key;
// the old key then verifies EXPIRED. A revoked key is replaced within a
// ttl; revoking the agent's token revokes the key it holds. Nothing it
// logs holds a key.
//
// The timing, for ttl=5s and max_ttl=10s (consul-template's
// dependency/vault_read.go Fetch, renewSecret in vault_common.go, and the
// api package's LifetimeWatcher): the first key is rendered at once; the
// watcher renews at once and then every 2/3 of the lease plus a third of a
// grace of 10-20% of the first lease (at about 3.5 s and 7 s), and stops as
// soon as a renewal answers a lease no longer than 4 graces (the engine
// answers 2 s at 7 s, the rest up to max_ttl). consul-template then reads
// creds again at once, so the new key is rendered about 7 s after the
// first (at the latest shortly before 10 s, when a renewal is refused at
// max_ttl and the watcher waits out the lease), while the first key still
// verifies: the overlap is the old key's last lease period. At 10 s Vault's
// lease manager ends the first lease, the engine records the key as
// expired (a lease ending at the key's own end is expiry, not a
// revocation; secret_api_key.go revokeKeyNoting), and verify answers
// EXPIRED, which it would from the record's expires_at alone even before
// that.
//
// Against an engine that answers a top-level `metadata` map (before the
// rename to labels), the first render never comes: consul-template's
// deletedKVv2 (dependency/vault_read.go, called by readSecret) reads any
// map in data["metadata"] without a deletion_time as a deleted KV v2 entry
// and answers "no secret exists at <mount>/creds/<role>", retrying.
func TestIntegration_vaultAgentRendersAndRotatesKeys(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	const role = "prod-trader"
	const ttl, maxTTL = 5 * time.Second, 10 * time.Second
	e.vault("write", e.path("roles/"+role), "environment=prod", "scopes=read", "ttl=5s", "max_ttl=10s")

	// The agent's token: app-agent.hcl as shipped, for this test's mount,
	// plus Vault's default policy (what `vault token create -policy=...`
	// attaches), which grants the body-form lease renewal the agent uses.
	text, err := os.ReadFile(filepath.Join(vaulttest.RepoRoot(), "examples", "policies", "app-agent.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	policy := "app-agent-" + e.mount
	if err := e.srv.Client.Sys().PutPolicy(policy, strings.ReplaceAll(string(text), `cryptokeys/`, e.mount+`/`)); err != nil {
		t.Fatal(err)
	}
	tok, err := e.srv.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{policy}, TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	secrets := t.TempDir() // what the agent reads and renders; its own dir holds only config and log
	tokenFile := filepath.Join(secrets, "token")
	if err := os.WriteFile(tokenFile, []byte(tok.Auth.ClientToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(secrets, "api_key")
	renders := filepath.Join(secrets, "renders")

	// The exec block runs after every render: the restart hook of Vault
	// 1.13 (the agent's own top-level exec stanza came in 1.14).
	config := fmt.Sprintf(`
vault {
  address = %q
}

auto_auth {
  method "token_file" {
    config = {
      token_file_path = %q
    }
  }
}

template {
  contents    = "{{ with secret \"%s/creds/%s\" }}{{ .Data.api_key }}{{ end }}"
  destination = %q
  perms       = "0600"
  exec {
    command = ["sh", "-c", "date +%%s.%%N >> %s"]
    timeout = "5s"
  }
}
`, e.srv.Addr, tokenFile, e.mount, role, dest, renders)
	agent := vaulttest.StartAgent(t, config, "trace")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log (keys redacted):\n%s", agent.Log(t))
		}
	})

	// rendered waits up to within for the destination to hold a key other
	// than not.
	rendered := func(not string, within time.Duration) (string, time.Time) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			b, _ := os.ReadFile(dest) // #nosec G304 -- the test's own temp dir
			if s := strings.TrimSpace(string(b)); s != "" && s != not {
				if _, err := keyformat.Parse(s); err != nil {
					t.Fatalf("the agent rendered something that is not a key (%v)", err)
				}
				return s, time.Now()
			}
			if agent.Exited() {
				t.Fatal("the agent exited")
			}
			if time.Now().After(deadline) {
				what := "key"
				if not != "" {
					what = "new key"
				}
				hint := ""
				for _, line := range strings.Split(agent.Log(t), "\n") {
					if strings.Contains(line, "no secret exists") {
						hint = "\nthe agent's consul-template says: " + line
						break
					}
				}
				t.Fatalf("no %s rendered within %s%s", what, within, hint)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	first, t1 := rendered("", 30*time.Second)
	e.wantCode(first, "VALID", "environment=prod", "scopes=read")

	// Past the first lease's ttl: only a renewal keeps the key valid (an
	// unrenewed lease ends at 5 s, and the key with it).
	time.Sleep(time.Until(t1.Add(ttl + 1500*time.Millisecond)))
	e.wantCode(first, "VALID", "environment=prod")

	second, t2 := rendered(first, 2*maxTTL)
	e.wantCode(second, "VALID", "environment=prod", "scopes=read")
	gap := t2.Sub(t1)
	t.Logf("second key rendered %s after the first", gap.Round(10*time.Millisecond))
	if gap < ttl {
		t.Fatalf("a new key after %s, before the first lease's ttl: the agent did not renew", gap)
	}
	// The overlap: the first key still verifies when the second arrives,
	// unless the agent fetched within the last second of max_ttl (the
	// refused-renewal path).
	if d := e.verify(first); d["code"] != "VALID" {
		if gap < maxTTL-time.Second {
			t.Fatalf("the first key answers %v when the second is rendered %s after it: no overlap", d["code"], gap)
		}
		t.Logf("the first key answers %v when the second arrives (%s after it)", d["code"], gap)
	}

	// At max_ttl the first key ends: expired, not revoked.
	code := e.eventually(first, maxTTL, "EXPIRED", "REVOKED")
	if code != "EXPIRED" {
		t.Fatalf("the first key answers %s after max_ttl, want EXPIRED", code)
	}
	t.Logf("the first key answers EXPIRED %s after it was rendered", time.Since(t1).Round(10*time.Millisecond))
	e.wantCode(second, "VALID", "environment=prod")

	// A revoked key is replaced within about one ttl: its next renewal is
	// refused, and the watcher gives up once a retry would land past the
	// lease it last got, so the agent reads a new key.
	k2, err := keyformat.Parse(second)
	if err != nil {
		t.Fatal(err)
	}
	e.vault("delete", e.path("keys/"+k2.KeyID))
	revoked := time.Now()
	third, t3 := rendered(second, ttl+5*time.Second)
	e.wantCode(third, "VALID", "environment=prod")
	e.wantCode(second, "REVOKED")
	t.Logf("the revoked second key was replaced %s after its revocation", t3.Sub(revoked).Round(10*time.Millisecond))

	// The exec command ran once per render.
	b, err := os.ReadFile(renders) // #nosec G304 -- the test's own temp dir
	if err != nil {
		t.Fatalf("the template's exec command never ran: %v", err)
	}
	if n := len(strings.Fields(string(b))); n != 3 {
		t.Fatalf("the exec command ran %d times, want once per render (3)", n)
	}

	// Revoking the agent's token (what the injector's
	// agent-revoke-on-shutdown does) revokes the leases it made: the key
	// it holds answers REVOKED, not a lease-run-out EXPIRED.
	agent.Stop()
	e.vault("token", "revoke", tok.Auth.ClientToken)
	if code := e.eventually(third, 5*time.Second, "REVOKED", "EXPIRED"); code != "REVOKED" {
		t.Fatalf("the agent's key answers %s once its token is revoked, want REVOKED", code)
	}

	// Hygiene: the agent, logging at trace, wrote no key (a key with a valid
	// checksum, raw or escaped) into its log.
	log := agent.Log(t)
	if !strings.Contains(log, e.mount+"/creds/"+role) {
		t.Fatalf("the agent's log never names the template's secret; is it logging at all?\n%s", log)
	}
	findings, err := vaulttest.LeakFindings(agent.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		t.Errorf("agent log: %s", f)
	}
}
