package vaultplugin

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// faultStorage wraps a logical.Storage and injects the failures a real
// storage backend (raft, Consul, a network hop to Vault for an external
// plugin) can show, for the model-based test (model_test.go):
//
//   - faultErrNoCommit: Put/Delete returns an error and nothing changed;
//   - faultCommitThenErr: the change is made, then an error is returned
//     (a timeout after the leader applied it);
//   - faultCommitLate: an error is returned and the change is held, to be
//     applied later: at a step boundary the harness picks (applyDue), or
//     before any later write to the same storage key (writes to one key are
//     never reordered), or when the harness heals the storage (applyAll);
//     until then reads do not see it;
//   - faultSlow: the write commits, and before it returns the interleave
//     hook runs (the model verifies a key there, between the storage write
//     and the engine's cache update);
//   - Get/List errors.
//
// Decisions are not drawn from a shared random stream but hashed from the
// seed, the model step, the storage key (with key_ids replaced by the
// model's stable names, see names) and how many times that key was touched
// in this step. The engine iterates maps and its key_ids come from
// crypto/rand, so the order of its storage calls varies between runs of one
// seed; hashing keeps each call's fate the same.
type faultStorage struct {
	inner logical.Storage

	mu      sync.Mutex
	seed    int64
	step    int
	rates   faultRates
	enabled bool // faults are injected only while enabled
	calls   map[string]int
	held    []heldWrite
	// names maps key_ids to stable names ("k3") for hashing and logs.
	names map[string]string
	// interleave runs inside a slow write, after it committed (nil: none).
	interleave func(storageKey string)
	// log receives one line per injected fault.
	log func(format string, args ...any)
}

type faultKind int

const (
	faultNone faultKind = iota
	faultErrNoCommit
	faultCommitThenErr
	faultCommitLate
	faultSlow
)

func (k faultKind) String() string {
	return [...]string{"none", "error-no-commit", "commit-then-error", "commit-late", "slow"}[k]
}

// faultRates are per-call probabilities while faults are enabled.
type faultRates struct {
	NoCommit, CommitThenErr, CommitLate, Slow float64 // writes
	Read                                      float64 // Get and List errors
}

type heldWrite struct {
	key     string
	entry   *logical.StorageEntry // nil: a Delete
	dueStep int
}

var errInjected = errors.New("injected storage fault")

func newFaultStorage(inner logical.Storage, seed int64) *faultStorage {
	return &faultStorage{inner: inner, seed: seed, calls: map[string]int{}, names: map[string]string{}, log: func(string, ...any) {}}
}

// setStep starts model step n: per-step counters restart and writes held
// until n are applied.
func (s *faultStorage) setStep(ctx context.Context, n int) error {
	s.mu.Lock()
	s.step = n
	clear(s.calls)
	s.mu.Unlock()
	return s.applyDue(ctx)
}

func (s *faultStorage) setEnabled(on bool) {
	s.mu.Lock()
	s.enabled = on
	s.mu.Unlock()
}

// pause turns faults off until the returned func restores them: for the
// model's own checks, which must neither fail nor change any decision.
func (s *faultStorage) pause() (restore func()) {
	s.mu.Lock()
	was := s.enabled
	s.enabled = false
	s.mu.Unlock()
	return func() { s.setEnabled(was) }
}

func (s *faultStorage) name(keyID, name string) {
	s.mu.Lock()
	s.names[keyID] = name
	s.mu.Unlock()
}

// normalize replaces key_ids in a storage key by their stable names.
// Unknown 12-character ids (a successor whose rotation failed) become "?".
func (s *faultStorage) normalize(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		// revocations/<stamp>-<key_id>
		if stamp, id, ok := strings.Cut(p, "-"); ok && len(id) == 12 {
			parts[i] = stamp + "-" + s.nameOf(id)
			continue
		}
		if len(p) == 12 {
			parts[i] = s.nameOf(p)
		}
	}
	return strings.Join(parts, "/")
}

func (s *faultStorage) nameOf(id string) string {
	if n, ok := s.names[id]; ok {
		return n
	}
	return "?"
}

// decide picks the fate of one call. s.mu must be held.
func (s *faultStorage) decide(op, key string) (faultKind, float64) {
	if !s.enabled {
		return faultNone, 0
	}
	nk := op + " " + s.normalize(key)
	s.calls[nk]++
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%d|%s|%d", s.seed, s.step, nk, s.calls[nk])
	u := float64(h.Sum64()>>11) / float64(1<<53)
	if op == "get" || op == "list" {
		if u < s.rates.Read {
			return faultErrNoCommit, u
		}
		return faultNone, u
	}
	r := s.rates
	switch {
	case u < r.NoCommit:
		return faultErrNoCommit, u
	case u < r.NoCommit+r.CommitThenErr:
		return faultCommitThenErr, u
	case u < r.NoCommit+r.CommitThenErr+r.CommitLate:
		return faultCommitLate, u
	case u < r.NoCommit+r.CommitThenErr+r.CommitLate+r.Slow:
		return faultSlow, u
	}
	return faultNone, u
}

func (s *faultStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	s.mu.Lock()
	f, _ := s.decide("get", key)
	s.mu.Unlock()
	if f != faultNone {
		s.log("fault: get %s: error", s.normalizeLocked(key))
		return nil, fmt.Errorf("reading %s: %w", key, errInjected)
	}
	return s.inner.Get(ctx, key)
}

func (s *faultStorage) List(ctx context.Context, prefix string) ([]string, error) {
	s.mu.Lock()
	f, _ := s.decide("list", prefix)
	s.mu.Unlock()
	if f != faultNone {
		s.log("fault: list %s: error", s.normalizeLocked(prefix))
		return nil, fmt.Errorf("listing %s: %w", prefix, errInjected)
	}
	return s.inner.List(ctx, prefix)
}

func (s *faultStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	cp := &logical.StorageEntry{Key: e.Key, Value: slices.Clone(e.Value), SealWrap: e.SealWrap}
	return s.write(ctx, "put", e.Key, cp)
}

func (s *faultStorage) Delete(ctx context.Context, key string) error {
	return s.write(ctx, "delete", key, nil)
}

func (s *faultStorage) write(ctx context.Context, op, key string, e *logical.StorageEntry) error {
	// Writes to one key stay in order: a write held for later lands first.
	if err := s.applyHeldFor(ctx, key); err != nil {
		return err
	}
	s.mu.Lock()
	f, u := s.decide(op, key)
	due := s.step + 1 + int(u*1e6)%3
	if f == faultCommitLate {
		s.held = append(s.held, heldWrite{key: key, entry: e, dueStep: due})
	}
	hook := s.interleave
	s.mu.Unlock()
	nk := s.normalizeLocked(key)
	switch f {
	case faultErrNoCommit:
		s.log("fault: %s %s: %s", op, nk, f)
		return fmt.Errorf("%s %s: %w", op, key, errInjected)
	case faultCommitLate:
		s.log("fault: %s %s: %s (lands at step %d)", op, nk, f, due)
		return fmt.Errorf("%s %s: %w (timed out)", op, key, errInjected)
	}
	if err := s.apply(ctx, key, e); err != nil {
		return err
	}
	switch f {
	case faultCommitThenErr:
		s.log("fault: %s %s: %s", op, nk, f)
		return fmt.Errorf("%s %s: %w (after commit)", op, key, errInjected)
	case faultSlow:
		s.log("fault: %s %s: %s", op, nk, f)
		if hook != nil {
			hook(key)
		}
	}
	return nil
}

func (s *faultStorage) normalizeLocked(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.normalize(key)
}

func (s *faultStorage) apply(ctx context.Context, key string, e *logical.StorageEntry) error {
	if e == nil {
		return s.inner.Delete(ctx, key)
	}
	return s.inner.Put(ctx, e)
}

// takeHeld removes and returns, in order, the held writes that match.
func (s *faultStorage) takeHeld(match func(heldWrite) bool) []heldWrite {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out, keep []heldWrite
	for _, h := range s.held {
		if match(h) {
			out = append(out, h)
		} else {
			keep = append(keep, h)
		}
	}
	s.held = keep
	return out
}

func (s *faultStorage) applyHeld(ctx context.Context, hs []heldWrite) error {
	for _, h := range hs {
		s.log("late commit lands: %s", s.normalizeLocked(h.key))
		if err := s.apply(ctx, h.key, h.entry); err != nil {
			return err
		}
	}
	return nil
}

func (s *faultStorage) applyHeldFor(ctx context.Context, key string) error {
	return s.applyHeld(ctx, s.takeHeld(func(h heldWrite) bool { return h.key == key }))
}

// applyDue applies the held writes due by the current step.
func (s *faultStorage) applyDue(ctx context.Context) error {
	s.mu.Lock()
	step := s.step
	s.mu.Unlock()
	return s.applyHeld(ctx, s.takeHeld(func(h heldWrite) bool { return h.dueStep <= step }))
}

// applyAll lands every held write: the storage is healed.
func (s *faultStorage) applyAll(ctx context.Context) error {
	return s.applyHeld(ctx, s.takeHeld(func(heldWrite) bool { return true }))
}

func (s *faultStorage) heldCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held)
}

// TestFaultStorage_kinds pins what each injected fault does to storage.
func TestFaultStorage_kinds(t *testing.T) {
	ctx := context.Background()
	put := func(s *faultStorage, v string) error {
		return s.Put(ctx, &logical.StorageEntry{Key: "keys/a", Value: []byte(v)})
	}
	stored := func(s *faultStorage) string {
		e, err := s.inner.Get(ctx, "keys/a")
		if err != nil || e == nil {
			return ""
		}
		return string(e.Value)
	}
	only := func(r faultRates) *faultStorage {
		s := newFaultStorage(&logical.InmemStorage{}, 1)
		s.rates = r
		s.setEnabled(true)
		return s
	}

	s := only(faultRates{NoCommit: 1})
	if err := put(s, "x"); !errors.Is(err, errInjected) || stored(s) != "" {
		t.Fatalf("error-no-commit: err %v, stored %q", err, stored(s))
	}
	s = only(faultRates{CommitThenErr: 1})
	if err := put(s, "x"); !errors.Is(err, errInjected) || stored(s) != "x" {
		t.Fatalf("commit-then-error: err %v, stored %q", err, stored(s))
	}

	s = only(faultRates{CommitLate: 1})
	if err := s.setStep(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := put(s, "late"); !errors.Is(err, errInjected) || stored(s) != "" || s.heldCount() != 1 {
		t.Fatalf("commit-late: err %v, stored %q, held %d", err, stored(s), s.heldCount())
	}
	s.setEnabled(false)
	if err := put(s, "next"); err != nil || stored(s) != "next" || s.heldCount() != 0 {
		t.Fatalf("a later write must land after the held one: err %v, stored %q, held %d", err, stored(s), s.heldCount())
	}
	s.setEnabled(true)
	_ = put(s, "late again")
	if err := s.setStep(ctx, 5); err != nil || stored(s) != "late again" {
		t.Fatalf("held write not landed by its step: %v %q", err, stored(s))
	}

	s = only(faultRates{Slow: 1})
	var during string
	s.interleave = func(string) { during = stored(s) }
	if err := put(s, "slow"); err != nil || during != "slow" {
		t.Fatalf("slow: err %v, interleaved read saw %q", err, during)
	}

	s = only(faultRates{Read: 1})
	if _, err := s.Get(ctx, "keys/a"); !errors.Is(err, errInjected) {
		t.Fatalf("read fault: %v", err)
	}
	restore := s.pause()
	if _, err := s.Get(ctx, "keys/a"); err != nil {
		t.Fatalf("paused: %v", err)
	}
	restore()
	if _, err := s.List(ctx, "keys/"); !errors.Is(err, errInjected) {
		t.Fatalf("list fault after restore: %v", err)
	}
}
