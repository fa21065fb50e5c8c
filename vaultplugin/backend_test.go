package vaultplugin

import (
	"context"
	"encoding/json"
	"maps"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/logical"
)

// testClock is the engine's injected clock in unit tests.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// countingStorage counts writes, to prove verify never writes.
type countingStorage struct {
	logical.Storage
	mu     sync.Mutex
	puts   int
	gets   int
	delets int
	// lists counts List calls of the key records' prefix (a tidy scan).
	lists int
	// getsOf counts reads by storage key.
	getsOf map[string]int
}

func (s *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.mu.Lock()
	s.puts++
	s.mu.Unlock()
	return s.Storage.Put(ctx, e)
}

func (s *countingStorage) Get(ctx context.Context, k string) (*logical.StorageEntry, error) {
	s.mu.Lock()
	s.gets++
	if s.getsOf == nil {
		s.getsOf = map[string]int{}
	}
	s.getsOf[k]++
	s.mu.Unlock()
	return s.Storage.Get(ctx, k)
}

func (s *countingStorage) List(ctx context.Context, prefix string) ([]string, error) {
	if prefix == keyStoragePrefix {
		s.mu.Lock()
		s.lists++
		s.mu.Unlock()
	}
	return s.Storage.List(ctx, prefix)
}

func (s *countingStorage) Delete(ctx context.Context, k string) error {
	s.mu.Lock()
	s.delets++
	s.mu.Unlock()
	return s.Storage.Delete(ctx, k)
}

func (s *countingStorage) readsOf(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getsOf[key]
}

func (s *countingStorage) counts() (puts, gets, deletes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts, s.gets, s.delets
}

type testEnv struct {
	t       testing.TB
	b       *backend
	storage *countingStorage
	clock   *testClock
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	return newTestEnvWith(t, logical.TestSystemView())
}

// newTestEnvWith is newTestEnv with the system view Vault would pass.
func newTestEnvWith(t testing.TB, sys logical.SystemView) *testEnv {
	t.Helper()
	clock := &testClock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	conf := logical.TestBackendConfig()
	conf.System = sys
	storage := &countingStorage{Storage: &logical.InmemStorage{}}
	conf.StorageView = storage
	b, err := newMountedBackend(context.Background(), conf, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, b: b, storage: storage, clock: clock}
}

// do sends a request the way Vault's router would and returns the response.
func (e *testEnv) do(op logical.Operation, path string, data map[string]any) *logical.Response {
	e.t.Helper()
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{
		Operation:   op,
		Path:        path,
		Data:        data,
		Storage:     e.storage,
		DisplayName: "token-tester",
		EntityID:    "entity-1234",
	})
	if err != nil && resp == nil {
		e.t.Fatalf("%s %s: %v", op, path, err)
	}
	if err == nil {
		checkDeclared(e.t, e.b, op, path, resp)
	}
	return resp
}

func (e *testEnv) ok(op logical.Operation, path string, data map[string]any) *logical.Response {
	e.t.Helper()
	resp := e.do(op, path, data)
	if resp != nil && resp.IsError() {
		e.t.Fatalf("%s %s: unexpected error %v", op, path, resp.Error())
	}
	return resp
}

// badRequest asserts a 400 whose message names field and contains rule.
func (e *testEnv) badRequest(op logical.Operation, path string, data map[string]any, field, rule string) {
	e.t.Helper()
	resp := e.do(op, path, data)
	if resp == nil || !resp.IsError() {
		e.t.Fatalf("%s %s %v: want an error naming %q, got %#v", op, path, data, field, resp)
	}
	msg := resp.Error().Error()
	if !strings.Contains(msg, field) || !strings.Contains(msg, rule) {
		e.t.Fatalf("%s %s: error %q should name %q and say %q", op, path, msg, field, rule)
	}
}

func (e *testEnv) role(name string, data map[string]any) {
	e.t.Helper()
	e.ok(logical.UpdateOperation, "roles/"+name, data)
}

// issue issues a key and returns its response data and the lease's secret.
func (e *testEnv) issue(role string, data map[string]any) (map[string]any, *logical.Secret) {
	e.t.Helper()
	var op logical.Operation = logical.ReadOperation
	if data != nil {
		op = logical.UpdateOperation
	}
	resp := e.ok(op, "creds/"+role, data)
	if resp.Secret == nil {
		e.t.Fatalf("creds/%s returned no lease", role)
	}
	return resp.Data, resp.Secret
}

func (e *testEnv) verify(data map[string]any) map[string]any {
	e.t.Helper()
	return e.ok(logical.UpdateOperation, "verify", data).Data
}

func (e *testEnv) wantCode(data map[string]any, code string) map[string]any {
	e.t.Helper()
	got := e.verify(data)
	if got["code"] != code {
		e.t.Fatalf("verify: code %v (%v), want %s", got["code"], got["message"], code)
	}
	if got["valid"] != (code == wire.CodeValid) {
		e.t.Fatalf("verify: valid=%v with code %s", got["valid"], code)
	}
	return got
}

// dump returns every storage entry, to check that bad input changes nothing
// and that no secret is stored.
func (e *testEnv) dump() map[string]string {
	e.t.Helper()
	keys, err := logical.CollectKeys(context.Background(), e.storage)
	if err != nil {
		e.t.Fatal(err)
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		ent, err := e.storage.Storage.Get(context.Background(), k)
		if err != nil {
			e.t.Fatal(err)
		}
		out[k] = string(ent.Value)
	}
	return out
}

func (e *testEnv) assertUnchanged(before map[string]string) {
	e.t.Helper()
	after := e.dump()
	if !maps.Equal(before, after) {
		e.t.Fatalf("storage changed:\nbefore %v\nafter  %v", sortedKeys(before), sortedKeys(after))
	}
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestBackend_factorySetsVersion(t *testing.T) {
	conf := logical.TestBackendConfig()
	conf.StorageView = &logical.InmemStorage{}
	b, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.(*backend).RunningVersion; got != Version {
		t.Fatalf("RunningVersion %q, want %q", got, Version)
	}
}

func TestBackend_everyPathHasHelpAndDisplayAttrs(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range e.b.Paths {
		if p.HelpSynopsis == "" || p.HelpDescription == "" {
			t.Errorf("path %q lacks help", p.Pattern)
		}
		if p.DisplayAttrs == nil || p.DisplayAttrs.OperationPrefix != operationPrefix {
			t.Errorf("path %q lacks DisplayAttrs with the operation prefix", p.Pattern)
		}
		for name, f := range p.Fields {
			if f.Description == "" {
				t.Errorf("path %q field %q has no description", p.Pattern, name)
			}
		}
	}
}
