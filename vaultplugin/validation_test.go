package vaultplugin

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// respond is the one way a callback answers a 400: a fieldError, however
// wrapped, becomes an error response naming the field and the rule; any
// other error passes on untouched.
func TestRespond(t *testing.T) {
	resp, err := respond(badField("ttl", "must be at most %s", "720h"))
	if err != nil || resp == nil || !resp.IsError() || resp.Error().Error() != "ttl: must be at most 720h" {
		t.Fatalf("badField: %v %v", resp, err)
	}
	resp, err = respond(fmt.Errorf("narrowing: %w", badField("scopes", "must be in the role's")))
	if err != nil || resp == nil || resp.Error().Error() != "scopes: must be in the role's" {
		t.Fatalf("wrapped badField: %v %v", resp, err)
	}
	resp, err = respond(badRequest("key %s has reached its max_ttl", "abc"))
	if err != nil || resp == nil || resp.Error().Error() != "key abc has reached its max_ttl" {
		t.Fatalf("badRequest: %v %v", resp, err)
	}
	boom := errors.New("storage down")
	if resp, err := respond(boom); resp != nil || !errors.Is(err, boom) {
		t.Fatalf("another error must pass on: %v %v", resp, err)
	}
}

// strict refuses a request that names a field the path does not know,
// naming it and what the path accepts, and changes nothing.
func TestStrict_unknownFieldIsA400(t *testing.T) {
	e := newTestEnv(t)
	before := e.dump()
	e.badRequest(logical.UpdateOperation, "roles/r", map[string]any{"environment": "prod", "max_tll": "1h"}, `unknown field "max_tll"`, "this path accepts")
	e.assertUnchanged(before)
	e.role("r", map[string]any{"environment": "prod"}) // known fields only: accepted
}

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name, rule string
	}{
		{"", "is required"},
		{strings.Repeat("a", 65), "at most"},
		{"a/b", ""},
		{"prod-trader", "-"},
	} {
		err := validateName("name", tc.name)
		if tc.rule == "-" {
			if err != nil {
				t.Errorf("%q: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), "name: ") || !strings.Contains(err.Error(), tc.rule) {
			t.Errorf("%q: %v, want a name error saying %q", tc.name, err, tc.rule)
		}
	}
}
