// Package gcpace paces a long-running process's garbage collector by its
// live heap: the plugin and `cryptokeys gateway` both hold a large, long-lived
// key cache, for which Go's default GOGC=100 doubles the resident memory.
package gcpace

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// The pacing, unless the process's environment sets GOGC (for the plugin, a
// GOGC in its catalog entry, the `env` of sys/plugins/catalog, wins).
//
// The engine's heap is mostly its record cache, which lives long. With Go's
// default GOGC=100 a process holding 100,000 cached keys grows to twice its
// live heap before a collection (216 MB measured); at GOGC=50 it stays near
// 177 MB, under the 200 MB target. But a small heap at GOGC=50 is collected
// after every few megabytes allocated: with 1,000 keys the plugin spent
// about a fifth of its CPU on GC while issuing keys. So the headroom is half
// the live heap, but never less than gcHeadroomFloor: a small engine pays
// at most that much memory, and a large one keeps GOGC=50.
const (
	gcPercentLarge  = 50       // headroom as a share of a large live heap
	gcHeadroomFloor = 32 << 20 // bytes: the least headroom at any size
	gcPercentMax    = 800      // the most headroom, as a share of a tiny heap
)

// gcPercentFor is the GOGC that gives a live heap of live bytes its headroom.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return gcPercentMax
	}
	p := (gcHeadroomFloor*100 + live - 1) / live
	return int(max(gcPercentLarge, min(gcPercentMax, p)))
}

// Start paces the GC by the live heap after every collection, unless the
// environment sets GOGC (then it returns nil). Call it once, early in main.
func Start() *Pacer {
	if os.Getenv("GOGC") != "" {
		return nil
	}
	p := &Pacer{set: debug.SetGCPercent, live: liveHeap}
	p.set(gcPercentLarge)
	p.percent = gcPercentLarge
	p.arm()
	return p
}

// Pacer sets GOGC after each collection from the heap that survived it.
// It learns of a collection through a cleanup on an unreachable sentinel,
// which the runtime runs once the GC has found it unreachable, and then
// arms a new one. So one pacer has one cleanup pending at a time, and its
// fields need no lock.
type Pacer struct {
	set     func(int) int // debug.SetGCPercent
	live    func() uint64 // the live heap after the last collection
	percent int           // the GOGC last set
	stopped atomic.Bool   // tests stop the pacer; the processes never do
}

// gcSentinel holds a pointer so the runtime's tiny allocator, which may
// share one slot between objects, never delays its cleanup.
type gcSentinel struct{ _ *byte }

func (p *Pacer) arm() {
	runtime.AddCleanup(&gcSentinel{}, (*Pacer).afterGC, p)
}

func (p *Pacer) afterGC() {
	if p.stopped.Load() {
		return
	}
	if q := gcPercentFor(p.live()); q != p.percent {
		p.set(q)
		p.percent = q
	}
	p.arm()
}

// liveHeap is the heap the last collection marked live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
