package provider

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// terraformCLI runs the real Terraform CLI (or OpenTofu: whichever
// TF_ACC_TERRAFORM_PATH names, as for terraform-plugin-testing) with the
// locally built provider (bin/terraform-provider-cryptokeys, via
// dev_overrides at both registries' addresses) in dir. Used where
// terraform-plugin-testing cannot go: its state shim does not support
// for_each instances, which is how the quickstart gives each environment
// its key.
func terraformCLI(t *testing.T, srv *vaulttest.Server, dir string) func(args ...string) string {
	t.Helper()
	tf := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if tf == "" {
		var err error
		if tf, err = exec.LookPath("terraform"); err != nil {
			t.Fatal("terraform CLI not found: set TF_ACC_TERRAFORM_PATH")
		}
	}
	providerBin := filepath.Join(vaulttest.RepoRoot(), "bin", "terraform-provider-cryptokeys")
	if _, err := os.Stat(providerBin); err != nil {
		t.Fatalf("%s missing: run `make provider` (make test does)", providerBin)
	}
	home := t.TempDir()
	rc := filepath.Join(home, "terraform.tfrc")
	if err := os.WriteFile(rc, []byte(`provider_installation {
  dev_overrides {
    "registry.terraform.io/cryptokeys/cryptokeys" = "`+filepath.Dir(providerBin)+`"
    "registry.opentofu.org/cryptokeys/cryptokeys" = "`+filepath.Dir(providerBin)+`"
  }
  direct {}
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), srv.Env()...)
	env = append(env, "TF_CLI_CONFIG_FILE="+rc, "HOME="+home, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "NO_COLOR=1")
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command(tf, args...) // #nosec G204 G702 -- the Terraform CLI the test run names (TF_ACC_TERRAFORM_PATH or PATH), with the test's own arguments
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(tf), args[0], err, out)
		}
		return string(out)
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".tf") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name())) // #nosec G304 -- an example directory of this repository
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil { // #nosec G703 -- dst is the test's temp dir; e.Name() is a base name from ReadDir
			t.Fatal(err)
		}
	}
	return dst
}

// TestAccExamples_quickstartEnvironmentsFromForEach applies
// examples/quickstart (roles and keys for dev, staging and prod from one
// for_each) and checks each key verifies only in its own environment.
func TestAccExamples_quickstartEnvironmentsFromForEach(t *testing.T) {
	srv, _ := accServer(t)
	dir := copyDir(t, filepath.Join(vaulttest.RepoRoot(), "examples", "quickstart"))
	tf := terraformCLI(t, srv, dir)
	mount := fmt.Sprintf("qs-%d", time.Now().UnixNano()%1_000_000)
	vars := []string{"-var", "mount=" + mount, "-var", "plugin_version=" + srv.PluginVersion}
	tf(append([]string{"apply", "-auto-approve", "-input=false"}, vars...)...)
	t.Cleanup(func() { tf(append([]string{"destroy", "-auto-approve", "-input=false"}, vars...)...) })

	var keys map[string]string
	if err := json.Unmarshal([]byte(tf("output", "-json", "api_keys")), &keys); err != nil {
		t.Fatal(err)
	}
	envs := []string{"dev", "staging", "prod"}
	if len(keys) != len(envs) {
		t.Fatalf("want a key per environment, got %d", len(keys))
	}
	for _, keyEnv := range envs {
		for _, serviceEnv := range envs {
			want := "ENVIRONMENT_MISMATCH"
			if keyEnv == serviceEnv {
				want = "VALID"
			}
			got, err := verifyCode(srv.Client, mount, keys[keyEnv], map[string]any{"environment": serviceEnv})
			if err != nil || got != want {
				t.Errorf("%s key in %s: %s (%v), want %s", keyEnv, serviceEnv, got, err, want)
			}
		}
	}
	// A second plan is empty: nothing drifts, no rotation is due.
	if out := tf(append([]string{"plan", "-detailed-exitcode", "-input=false"}, vars...)...); !strings.Contains(out, "No changes") {
		t.Fatalf("second plan not empty:\n%s", out)
	}
}

// TestExamples_validate runs `terraform validate` with the locally built
// provider over every example directory (the tfplugindocs snippets get the
// provider's source address added, as a user's configuration would have).
func TestExamples_validate(t *testing.T) {
	root := filepath.Join(vaulttest.RepoRoot(), "examples")
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".tf") && !strings.Contains(p, ".terraform") {
			if len(dirs) == 0 || dirs[len(dirs)-1] != filepath.Dir(p) {
				dirs = append(dirs, filepath.Dir(p))
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 10 {
		t.Fatalf("found only %d example directories", len(dirs))
	}
	// validate needs no server; the address only has to parse.
	srv := &vaulttest.Server{Addr: "http://127.0.0.1:1", Token: "unused"}
	for _, dir := range dirs {
		rel, _ := filepath.Rel(root, dir)
		t.Run(rel, func(t *testing.T) {
			work := copyDir(t, dir)
			tfFiles, _ := filepath.Glob(filepath.Join(work, "*.tf"))
			declared := false
			for _, f := range tfFiles {
				b, _ := os.ReadFile(f) // #nosec G304 -- a file the test copied into its temp dir
				declared = declared || strings.Contains(string(b), "required_providers")
			}
			if !declared {
				if err := os.WriteFile(filepath.Join(work, "zz_providers.tf"), []byte(`terraform {
  required_providers {
    cryptokeys = { source = "cryptokeys/cryptokeys" }
  }
}
`), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out := terraformCLI(t, srv, work)("validate", "-no-color")
			if !strings.Contains(out, "Success!") {
				t.Fatalf("terraform validate:\n%s", out)
			}
		})
	}
}

// TestAccExamples_ephemeralNoKeyOnDisk runs examples/ephemeral the way a
// pipeline does (plan to a file, apply that file) and searches every file
// Terraform wrote for key material: the saved plan (a zip, searched entry
// by entry) and the state. The smoke test proves the key was real while
// the run lasted; afterwards every key the run issued (one per
// plan and one per apply) is revoked.
func TestAccExamples_ephemeralNoKeyOnDisk(t *testing.T) {
	srv, mount := accServer(t)
	srv.MustCLI(t, "write", mount+"/roles/smoke", "environment=prod", "scopes=read", "ttl=15m")
	dir := copyDir(t, filepath.Join(vaulttest.RepoRoot(), "examples", "ephemeral"))
	tf := terraformCLI(t, srv, dir)
	vars := []string{"-input=false", "-var", "mount=" + mount, "-var", "role=smoke", "-var", "environment=prod"}

	planOut := tf(append([]string{"plan", "-out=tfplan"}, vars...)...)
	applyOut := tf("apply", "-input=false", "tfplan")
	// Terraform hides the provisioner's output (its environment holds an
	// ephemeral value), but the default command exits non-zero unless
	// verify answered VALID, which would have failed the apply.
	if !strings.Contains(applyOut, "Provisioning with 'local-exec'") {
		t.Fatalf("the smoke test did not run:\n%s", applyOut)
	}
	for what, text := range map[string]string{"plan output": planOut, "apply output": applyOut} {
		if m := keyformat.Find([]byte(text)); len(m) > 0 {
			t.Errorf("%s shows key %s", what, m[0].Key.KeyID)
		}
	}
	searched := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p) // #nosec G304 G122 -- the test's own Terraform working dir, read to search it for keys
		if err != nil {
			return err
		}
		searched++
		if m := keyformat.Find(b); len(m) > 0 {
			t.Errorf("%s holds key %s", p, m[0].Key.KeyID)
		}
		if strings.HasSuffix(p, "tfplan") {
			zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			for _, f := range zr.File {
				rc, err := f.Open()
				if err != nil {
					return err
				}
				content, err := io.ReadAll(rc)
				_ = rc.Close() // read-only: a close error changes nothing
				if err != nil {
					return err
				}
				if m := keyformat.Find(content); len(m) > 0 {
					t.Errorf("saved plan entry %s holds key %s", f.Name, m[0].Key.KeyID)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "terraform.tfstate")); err != nil || searched < 3 {
		t.Fatalf("expected a state file and a saved plan to search (%d files, %v)", searched, err)
	}

	statuses, err := roleKeyStatuses(srv.Client, mount, "smoke")
	if err != nil {
		t.Fatal(err)
	}
	if len(statuses) < 2 {
		t.Fatalf("want a key for the plan and one for the apply, got %d", len(statuses))
	}
	for id, st := range statuses {
		if st != "revoked" {
			t.Errorf("key %s issued by the run is %s, want revoked", id, st)
		}
	}
}

// TestAccExamples_ephemeralWithRoleFirstApply applies
// examples/ephemeral-with-role (a role, and an ephemeral key for it by the
// role's id) on an engine with no such role: the first apply creates the
// role and then opens the key, whose smoke test must see it VALID; the
// second apply (a new release) opens a key again. Every key is revoked
// afterwards.
func TestAccExamples_ephemeralWithRoleFirstApply(t *testing.T) {
	srv, mount := accServer(t)
	dir := copyDir(t, filepath.Join(vaulttest.RepoRoot(), "examples", "ephemeral-with-role"))
	tf := terraformCLI(t, srv, dir)
	vars := []string{"-auto-approve", "-input=false", "-var", "mount=" + mount}
	for i, release := range []string{"v1", "v2"} {
		out := tf(append([]string{"apply", "-var", "release=" + release}, vars...)...)
		if !strings.Contains(out, "Provisioning with 'local-exec'") {
			t.Fatalf("apply %d: the smoke test did not run:\n%s", i+1, out)
		}
		statuses, err := roleKeyStatuses(srv.Client, mount, "deploy-smoke")
		if err != nil {
			t.Fatal(err)
		}
		if len(statuses) < i+1 {
			t.Fatalf("apply %d: %d keys issued for the role, want at least %d", i+1, len(statuses), i+1)
		}
		for id, st := range statuses {
			if st != "revoked" {
				t.Errorf("apply %d: key %s is %s after the run, want revoked", i+1, id, st)
			}
		}
	}
	tf(append([]string{"destroy"}, vars...)...)
}
