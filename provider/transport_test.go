package provider

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

func TestPlainHTTPWarning(t *testing.T) {
	for addr, warn := range map[string]bool{
		"http://vault.example.com:8200":  true,
		"HTTP://10.0.0.5:8200":           true,
		"http://[2001:db8::1]:8200":      true,
		"http://127.0.0.1:8200":          false,
		"http://127.8.9.10:8200":         false,
		"http://[::1]:8200":              false,
		"http://localhost:8200":          false,
		"http://vault.localhost:8200":    false,
		"https://vault.example.com:8200": false,
		"unix:///run/vault/agent.sock":   false,
	} {
		got := plainHTTPWarning(addr)
		if (got != "") != warn {
			t.Errorf("%s: warning %q, want a warning: %v", addr, got, warn)
		}
		if warn && !strings.Contains(got, "https://") {
			t.Errorf("%s: the warning does not say what to do: %q", addr, got)
		}
	}
}

// configureWarnings runs the provider's ConfigureProvider as Terraform
// does and returns the warnings it answers with.
func configureWarnings(t *testing.T, address string) []*tfprotov6.Diagnostic {
	t.Helper()
	srv, err := NewProtocol6(New("test")())()
	if err != nil {
		t.Fatal(err)
	}
	vals := nullProviderConfig()
	vals["address"] = tftypes.NewValue(tftypes.String, address)
	vals["token"] = tftypes.NewValue(tftypes.String, "s.x")
	cfg := dynamic(t, providerConfigType, vals)
	if _, err := srv.GetProviderSchema(t.Context(), &tfprotov6.GetProviderSchemaRequest{}); err != nil {
		t.Fatal(err)
	}
	resp, err := srv.ConfigureProvider(t.Context(), &tfprotov6.ConfigureProviderRequest{TerraformVersion: "1.11.4", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	var out []*tfprotov6.Diagnostic
	for _, d := range resp.Diagnostics {
		if d.Severity == tfprotov6.DiagnosticSeverityError {
			t.Fatalf("configure failed: %s: %s", d.Summary, d.Detail)
		}
		out = append(out, d)
	}
	return out
}

// Issue 22: the provider warns when it would send its token over plain
// HTTP to an address that is not loopback, and only then.
func TestConfigure_warnsOfTokenOverPlainHTTP(t *testing.T) {
	d := configureWarnings(t, "http://vault.example.com:8200")
	if len(d) != 1 || d[0].Summary != "Vault token sent over plain HTTP" || !strings.Contains(d[0].Detail, "vault.example.com:8200") {
		t.Fatalf("want one plain-HTTP warning naming the address, got %+v", d)
	}
	for _, addr := range []string{"http://127.0.0.1:8200", "https://vault.example.com:8200"} {
		if d := configureWarnings(t, addr); len(d) != 0 {
			t.Errorf("%s: unexpected diagnostics %+v", addr, d)
		}
	}
}

// The docs say the provider reads ~/.vault-token itself and never runs a
// token_helper from the vault CLI's config: with one configured and no
// token file, there is no token, and the helper did not run.
func TestTokenHelperIsNotRun(t *testing.T) {
	home := t.TempDir()
	marker := filepath.Join(home, "helper-ran")
	helper := filepath.Join(home, "helper.sh")
	if err := os.WriteFile(helper, []byte("#!/bin/sh\ntouch "+marker+"\necho s.fromhelper\n"), 0o700); err != nil { // #nosec G306 -- an executable test script in the test's temp dir
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".vault"), []byte("token_helper = \""+helper+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("VAULT_CONFIG_PATH", filepath.Join(home, ".vault"))
	env := map[string]string{"VAULT_ADDR": "http://127.0.0.1:1", "HOME": home, "VAULT_CONFIG_PATH": filepath.Join(home, ".vault")}
	_, summary, _ := newVaultClient(providerModel{}, func(k string) string { return env[k] })
	if summary != "Missing Vault token" {
		t.Fatalf("want Missing Vault token, got %q", summary)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the provider ran the token_helper")
	}
}
