package vaultplugin

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// openAPIValidator is the real OpenAPI validator (@apidevtools/swagger-parser
// from the npm registry, pinned by tools/openapi/package-lock.json) that
// `make openapi-validator` installs. Like the Vault server, it is required:
// only `make unit` (CK_INTEGRATION_SKIP=1) skips without it.
func openAPIValidator(t *testing.T) (node, script string) {
	t.Helper()
	dir := filepath.Join(vaulttest.RepoRoot(), "tools", "openapi")
	script = filepath.Join(dir, "validate.mjs")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "@apidevtools", "swagger-parser", "package.json"))
	}
	if err != nil {
		if os.Getenv(vaulttest.SkipEnv) == "1" {
			t.Skipf("%s=1 and no OpenAPI validator: %v", vaulttest.SkipEnv, err)
		}
		t.Fatalf("no OpenAPI validator (%v): run `make openapi-validator` (node and npm needed)", err)
	}
	return node, script
}

type openAPIDoc struct {
	Paths map[string]map[string]json.RawMessage `json:"paths"`
}

type openAPIOperation struct {
	OperationID string `json:"operationId"`
	Responses   map[string]struct {
		Content map[string]struct {
			Schema struct {
				Ref string `json:"$ref"`
			} `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

// TestIntegration_openAPI reads the engine's OpenAPI document from the real
// server, as `vault read sys/internal/specs/openapi` does, and validates it
// with the real validator; every operation of the mount must answer with a
// response schema. Vault 1.13 renames the operations of that merged
// document in its legacy form (method, path and mount: getCk1234Info_ck-1234);
// the engine's own document, the one its help answers (`vault path-help`,
// GET <mount>?help=1) and that later Vaults merge as it is, carries the
// operation ids DisplayAttrs name: it must validate too, and hold exactly
// those ids.
func TestIntegration_openAPI(t *testing.T) {
	node, script := openAPIValidator(t)
	srv := vaulttest.Shared(t)
	mount := srv.Mount(t)
	validate := func(name string, doc any) openAPIDoc {
		t.Helper()
		raw, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), strings.NewReplacer("/", "_", "?", "_").Replace(name)+".json")
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(node, script, file).CombinedOutput() // #nosec G204 -- node from PATH running the project's own validator script on the test's file
		if err != nil {
			t.Fatalf("%s does not validate: %v\n%s", name, err, out)
		}
		t.Logf("%s: %s", name, strings.TrimSpace(string(out)))
		var d openAPIDoc
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}

	specs, err := srv.Client.Logical().ReadWithDataWithContext(t.Context(), "sys/internal/specs/openapi", map[string][]string{"context": {mount}})
	if err != nil {
		t.Fatal(err)
	}
	merged := validate("sys/internal/specs/openapi", specs.Data)
	checkResponses(t, merged, "/"+mount+"/")

	help, err := srv.Client.Logical().ReadWithDataWithContext(t.Context(), mount, map[string][]string{"help": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	own := validate(mount+"?help=1", help.Data["openapi"])
	got := checkResponses(t, own, "/")
	want := wantOperationIDs(t)
	for id := range want {
		if !got[id] {
			t.Errorf("operation id %s (from DisplayAttrs) is not in the engine's document", id)
		}
	}
	for id := range got {
		if !want[id] {
			t.Errorf("operation id %s in the engine's document is not one DisplayAttrs name", id)
		}
	}
}

// checkResponses checks that each operation under prefix answers 200 with
// a schema, and returns the operation ids.
func checkResponses(t *testing.T, doc openAPIDoc, prefix string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for p, ops := range doc.Paths {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		for method, rawOp := range ops {
			if !slices.Contains([]string{"get", "post", "delete", "put", "patch"}, method) {
				continue
			}
			var op openAPIOperation
			if err := json.Unmarshal(rawOp, &op); err != nil {
				t.Fatal(err)
			}
			ids[op.OperationID] = true
			if len(op.Responses) == 0 {
				t.Errorf("%s %s (%s): no responses", method, p, op.OperationID)
			}
			for status, r := range op.Responses {
				if status == "200" && len(r.Content) == 0 {
					t.Errorf("%s %s (%s): a 200 without a response schema", method, p, op.OperationID)
				}
			}
		}
	}
	if len(ids) == 0 {
		t.Errorf("no operations under %s", prefix)
	}
	return ids
}

// wantOperationIDs are the operation ids the engine's DisplayAttrs name:
// prefix, verb and suffix (when there is one), as the SDK joins them, the verb defaulting to
// the operation's (read, write, list, delete), the path's attributes
// completed by the operation's.
func wantOperationIDs(t *testing.T) map[string]bool {
	t.Helper()
	e := newTestEnv(t)
	out := map[string]bool{}
	for _, p := range e.b.Paths {
		for op, h := range p.Operations {
			if h.Properties().Unpublished {
				continue
			}
			a := framework.DisplayAttributes{}
			if p.DisplayAttrs != nil {
				a = *p.DisplayAttrs
			}
			if o := h.Properties().DisplayAttrs; o != nil {
				if o.OperationPrefix != "" {
					a.OperationPrefix = o.OperationPrefix
				}
				if o.OperationVerb != "" {
					a.OperationVerb = o.OperationVerb
				}
				if o.OperationSuffix != "" {
					a.OperationSuffix = o.OperationSuffix
				}
			}
			verb := a.OperationVerb
			if verb == "" {
				verb = map[logical.Operation]string{
					logical.ReadOperation: "read", logical.UpdateOperation: "write", logical.CreateOperation: "write",
					logical.ListOperation: "list", logical.DeleteOperation: "delete",
				}[op]
			}
			if a.OperationPrefix == "" {
				t.Errorf("%s %s: DisplayAttrs name no operation prefix", op, p.Pattern)
				continue
			}
			parts := []string{a.OperationPrefix, verb}
			if a.OperationSuffix != "" {
				parts = append(parts, a.OperationSuffix)
			}
			out[strings.Join(parts, "-")] = true
		}
	}
	return out
}
