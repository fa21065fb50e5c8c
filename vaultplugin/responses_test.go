package vaultplugin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Every operation of every path declares what it answers, so Vault's
// OpenAPI document describes it.
func TestOperationsDeclareResponses(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range e.b.Paths {
		for op, h := range p.Operations {
			props := h.Properties()
			if len(props.Responses) == 0 {
				t.Errorf("%s %s declares no response", op, p.Pattern)
				continue
			}
			for status, rs := range props.Responses {
				for _, r := range rs {
					if r.Description == "" {
						t.Errorf("%s %s: the %d response has no description", op, p.Pattern, status)
					}
					if status == http.StatusOK && len(r.Fields) == 0 {
						t.Errorf("%s %s: a 200 without fields (use noContent for an empty answer)", op, p.Pattern)
					}
					for name, f := range r.Fields {
						if f.Description == "" {
							t.Errorf("%s %s: response field %s has no description", op, p.Pattern, name)
						}
					}
				}
			}
		}
	}
}

// checkDeclared fails the test when a successful answer holds a field its
// operation does not declare, or one whose value does not fit the declared
// type (Vault's own strict field check, as the SDK's response validation
// test helper does). testEnv.do calls it for every request, so every test
// of the engine checks the declarations of what it exercises.
func checkDeclared(t testing.TB, b *backend, op logical.Operation, path string, resp *logical.Response) {
	t.Helper()
	if resp == nil || resp.IsError() || resp.Data == nil {
		return
	}
	if _, special := resp.Data[logical.HTTPStatusCode]; special {
		return
	}
	p := b.Route(path)
	if p == nil {
		return
	}
	h, found := p.Operations[op]
	if !found {
		return
	}
	var declared *framework.Response
	for _, status := range []int{http.StatusOK, http.StatusAccepted, http.StatusNoContent} {
		if rs := h.Properties().Responses[status]; len(rs) > 0 {
			declared = &rs[0]
			break
		}
	}
	if declared == nil {
		t.Errorf("%s %s answered %v but declares no response", op, path, keys(resp.Data))
		return
	}
	if err := fitsDeclared(declared, resp.Data); err != nil {
		t.Errorf("%s %s: %v", op, path, err)
	}
}

func fitsDeclared(declared *framework.Response, data map[string]any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	var undeclared []string
	for k := range raw {
		if _, ok := declared.Fields[k]; !ok {
			undeclared = append(undeclared, k)
		}
	}
	if len(undeclared) > 0 {
		slices.Sort(undeclared)
		return fmt.Errorf("answered fields it does not declare: %s", strings.Join(undeclared, ", "))
	}
	fd := framework.FieldData{Raw: raw, Schema: declared.Fields}
	if err := fd.ValidateStrict(); err != nil {
		return fmt.Errorf("an answer does not fit the declared types: %w", err)
	}
	return nil
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// The check itself refuses what it should.
func TestFitsDeclared(t *testing.T) {
	declared := &framework.Response{Description: "x", Fields: map[string]*framework.FieldSchema{
		"n": {Type: framework.TypeInt64}, "s": {Type: framework.TypeString}, "l": {Type: framework.TypeKVPairs},
	}}
	if err := fitsDeclared(declared, map[string]any{"n": 3, "s": "x", "l": map[string]string{"a": "b"}}); err != nil {
		t.Errorf("a fitting answer: %v", err)
	}
	if err := fitsDeclared(declared, map[string]any{"n": 3, "extra": true}); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("an undeclared field: %v", err)
	}
	if err := fitsDeclared(declared, map[string]any{"n": "three"}); err == nil {
		t.Error("a string where an integer is declared passed")
	}
}
