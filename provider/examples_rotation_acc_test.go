package provider

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
)

// TestAccExamples_rotationCreatesBeforeDestroy applies examples/rotation,
// asks for a rotation (rotation_epoch), and checks the plan the README
// promises: the key and its delivery are both replaced create-first, so the
// consumer never goes without a key that verifies (issue 21 item 9: without
// create_before_destroy on the delivery it was destroyed first).
func TestAccExamples_rotationCreatesBeforeDestroy(t *testing.T) {
	srv, mount := accServer(t)
	dir := copyDir(t, filepath.Join(vaulttest.RepoRoot(), "examples", "rotation"))
	tf := terraformCLI(t, srv, dir)
	vars := []string{"-input=false", "-var", "mount=" + mount}
	tf(append([]string{"apply", "-auto-approve"}, vars...)...)
	t.Cleanup(func() { tf(append([]string{"destroy", "-auto-approve"}, vars...)...) })

	tf(append([]string{"plan", "-out=rotate.tfplan", "-var", "rotation_epoch=2"}, vars...)...)
	var plan struct {
		ResourceChanges []struct {
			Address string `json:"address"`
			Change  struct {
				Actions []string `json:"actions"`
			} `json:"change"`
		} `json:"resource_changes"`
	}
	if err := json.Unmarshal([]byte(tf("show", "-json", "rotate.tfplan")), &plan); err != nil {
		t.Fatal(err)
	}
	replaced := map[string]bool{}
	for _, rc := range plan.ResourceChanges {
		a := rc.Change.Actions
		switch {
		case len(a) == 2 && a[0] == "create" && a[1] == "delete":
			replaced[rc.Address] = true
		case len(a) == 2:
			t.Errorf("%s is replaced %v: destroyed before its successor exists", rc.Address, a)
		}
	}
	for _, addr := range []string{"cryptokeys_api_key.market_data", "terraform_data.deliver"} {
		if !replaced[addr] {
			t.Errorf("%s is not replaced create-before-destroy; plan: %+v", addr, plan.ResourceChanges)
		}
	}
}
