package provider

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// underOpenTofu tells whether the CLI the acceptance tests run
// (TF_ACC_TERRAFORM_PATH; make test runs them under Terraform, then under
// OpenTofu) is OpenTofu, for the few places where the two differ.
func underOpenTofu(t *testing.T) bool {
	t.Helper()
	cli := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if cli == "" {
		return false
	}
	cmd := exec.Command(cli, "version") // #nosec G204 G702 -- the CLI the test run names
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE=", "CHECKPOINT_DISABLE=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s version: %v", cli, err)
	}
	return strings.Contains(string(out), "OpenTofu")
}
