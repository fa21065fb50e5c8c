package main

import (
	"runtime/debug"
	"testing"
)

// The plugin runs with GOGC=50 unless its environment says otherwise.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100)) // restore whatever ran before

	t.Setenv("GOGC", "")
	debug.SetGCPercent(100)
	tuneGC()
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Fatalf("GOGC unset: GC percent %d, want %d", got, gcPercent)
	}

	t.Setenv("GOGC", "200")
	debug.SetGCPercent(200) // as the runtime would have read it at start
	tuneGC()
	if got := debug.SetGCPercent(100); got != 200 {
		t.Fatalf("GOGC=200 in the environment: GC percent %d, want 200 kept", got)
	}
}
