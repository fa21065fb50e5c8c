package vaultplugin

import (
	"testing"
	"time"
)

func TestRateLimiters_bucket(t *testing.T) {
	l := newRateLimiters()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := &keyRecord{KeyID: "k1", RateLimit: 2, RateBurst: 3}
	for i := range 3 {
		if ok, _ := l.allow(rec, now); !ok {
			t.Fatalf("request %d within the burst of 3 refused", i+1)
		}
	}
	ok, wait := l.allow(rec, now)
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("the 4th at once: allowed=%v wait=%v, want refused with a wait of at most 1/rate", ok, wait)
	}
	// A refusal takes no token: after 1/rate exactly one more passes.
	later := now.Add(500 * time.Millisecond)
	if ok, _ := l.allow(rec, later); !ok {
		t.Fatal("a token refilled after 1/rate was not there")
	}
	if ok, _ := l.allow(rec, later); ok {
		t.Fatal("a second request at the same instant passed")
	}
}

func TestRateLimiters_burstDefaultsToTheRate(t *testing.T) {
	l := newRateLimiters()
	now := time.Now()
	rec := &keyRecord{KeyID: "k2", RateLimit: 1.5} // burst ceil(1.5) = 2
	passed := 0
	for range 5 {
		if ok, _ := l.allow(rec, now); ok {
			passed++
		}
	}
	if passed != 2 {
		t.Fatalf("%d passed at once, want a burst of ceil(rate_limit) = 2", passed)
	}
}

func TestRateLimiters_unlimitedAndDrop(t *testing.T) {
	l := newRateLimiters()
	now := time.Now()
	free := &keyRecord{KeyID: "free"}
	for range 100 {
		if ok, _ := l.allow(free, now); !ok {
			t.Fatal("a key without rate_limit was limited")
		}
	}
	if len(l.m) != 0 {
		t.Fatalf("an unlimited key got a bucket: %v", l.m)
	}
	rec := &keyRecord{KeyID: "k3", RateLimit: 1, RateBurst: 1}
	l.allow(rec, now)
	if ok, _ := l.allow(rec, now); ok {
		t.Fatal("burst 1: second request passed")
	}
	l.drop("k3") // a revoked or changed key starts over
	if ok, _ := l.allow(rec, now); !ok {
		t.Fatal("after drop the key starts with a full bucket")
	}
}
