package gcpace

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, gcPercentMax},       // no collection yet
		{1 * mib, gcPercentMax}, // 3,200% capped
		{4 * mib, 800},          // 32 MiB is 800% of 4 MiB
		{8 * mib, 400},          // a 1,000-key engine: 32 MiB of headroom
		{40 * mib, 80},
		{48 * mib, 67},             // rounded up: never less than the floor
		{64 * mib, gcPercentLarge}, // the floor is half the heap from here on
		{80 * mib, gcPercentLarge}, // about 100,000 cached keys
		{1 << 30, gcPercentLarge},
	} {
		got := gcPercentFor(c.live)
		if got != c.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", c.live/mib, got, c.want)
		}
		if headroom := float64(c.live) * float64(got) / 100; c.live > 0 && got < gcPercentMax && headroom < gcHeadroomFloor {
			t.Errorf("gcPercentFor(%d MiB) = %d leaves %.0f bytes of headroom, below the floor", c.live/mib, got, headroom)
		}
	}
}

// The pacer runs after real collections and sets GOGC from the live heap
// each one leaves, and only when that changes it.
func TestGCPacerFollowsTheLiveHeap(t *testing.T) {
	var mu sync.Mutex
	var sets []int
	var live atomic.Uint64
	var looks atomic.Int64
	p := &Pacer{
		set: func(q int) int {
			mu.Lock()
			defer mu.Unlock()
			sets = append(sets, q)
			return 0
		},
		live:    func() uint64 { looks.Add(1); return live.Load() },
		percent: gcPercentLarge,
	}
	defer p.stopped.Store(true)
	setsNow := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), sets...)
	}
	// collectUntil runs collections until the pacer has looked at the heap
	// n more times (cleanups run after a collection, on their own goroutine).
	collectUntil := func(n int64) {
		t.Helper()
		want := looks.Load() + n
		deadline := time.Now().Add(10 * time.Second)
		for looks.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("the pacer looked %d times, want %d: it is not re-armed after a collection", looks.Load(), want)
			}
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
	}

	live.Store(8 << 20)
	p.arm()
	collectUntil(1)
	if got := setsNow(); len(got) != 1 || got[0] != 400 {
		t.Fatalf("after a collection leaving 8 MiB live: GOGC set to %v, want [400]", got)
	}
	collectUntil(2)
	if got := setsNow(); len(got) != 1 {
		t.Fatalf("the live heap did not change, yet GOGC was set again: %v", got)
	}
	live.Store(100 << 20)
	collectUntil(1)
	if got := setsNow(); len(got) != 2 || got[1] != gcPercentLarge {
		t.Fatalf("after a collection leaving 100 MiB live: GOGC set to %v, want [400 %d]", got, gcPercentLarge)
	}
}

// A process is paced unless its environment sets GOGC.
func TestStart(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100)) // restore whatever ran before
	gogc := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}

	t.Setenv("GOGC", "200")
	debug.SetGCPercent(200) // as the runtime would have read it at start
	if p := Start(); p != nil {
		p.stopped.Store(true)
		t.Fatal("GOGC=200 in the environment, yet a pacer was started")
	}
	runtime.GC()
	if got := gogc(); got != 200 {
		t.Fatalf("GOGC=200 in the environment: GC percent %d, want 200 kept", got)
	}

	t.Setenv("GOGC", "")
	debug.SetGCPercent(100)
	p := Start()
	if p == nil {
		t.Fatal("GOGC unset, yet no pacer was started")
	}
	defer p.stopped.Store(true)
	// The test binary's heap is far below 64 MiB, so after a collection
	// the pacer gives it more than the large-heap setting.
	want := gcPercentFor(liveHeap())
	deadline := time.Now().Add(10 * time.Second)
	for got := gogc(); got <= gcPercentLarge; got = gogc() {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC unset: GC percent still %d after collections of a small heap, want about %d", got, want)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}
