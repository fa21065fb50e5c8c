package bench

import (
	"errors"
	"os"
	"sync"
	"testing"
	"time"
)

// RunInterleaved runs the ops in turn, round after round, and adds up each
// op's slices: the run is side by side, and nothing is counted twice.
func TestRunInterleaved(t *testing.T) {
	var mu sync.Mutex
	var blocks []string        // op names, one entry per change of op
	seen := map[string][]int{} // the i each op saw on worker 0
	calls := map[string]int{}  // every call, successful or not
	op := func(name string, fail bool) Op {
		return Op{Name: name, Do: func(w, i int) error {
			mu.Lock()
			defer mu.Unlock()
			if len(blocks) == 0 || blocks[len(blocks)-1] != name {
				blocks = append(blocks, name)
			}
			if w == 0 {
				seen[name] = append(seen[name], i)
			}
			calls[name]++
			time.Sleep(time.Millisecond)
			if fail && i%2 == 1 {
				return errors.New("odd call")
			}
			return nil
		}}
	}
	// A meter whose "server" has used 1 ms more at every reading: each of
	// the 6 slices is charged 1 ms, so each op 3 ms over its calls.
	var readings time.Duration
	meter := func() map[string]time.Duration {
		readings += time.Millisecond
		return map[string]time.Duration{"server": readings}
	}
	res := RunInterleaved(2, 120*time.Millisecond, 3, meter, []Op{op("a", false), op("b", true)})

	if want := []string{"a", "b", "a", "b", "a", "b"}; len(blocks) != len(want) {
		t.Fatalf("order of slices: %v, want %v", blocks, want)
	} else {
		for i := range want {
			if blocks[i] != want[i] {
				t.Fatalf("order of slices: %v, want %v", blocks, want)
			}
		}
	}
	for name, is := range seen {
		for k := 1; k < len(is); k++ {
			if is[k] <= is[k-1] {
				t.Fatalf("%s: worker 0's i went %d then %d: it must keep counting across slices, never repeat", name, is[k-1], is[k])
			}
		}
	}
	for name, m := range res {
		if m.Requests+m.Errors != calls[name] {
			t.Errorf("%s: %d requests + %d errors, but %d calls", name, m.Requests, m.Errors, calls[name])
		}
		if m.RPS <= 0 || m.P50us <= 0 || m.P99us < m.P50us {
			t.Errorf("%s: figures %+v", name, m)
		}
	}
	for name, m := range res {
		want := 3000.0 / float64(calls[name])
		if got := m.CPUusPerRequest["server"]; got < want*0.999 || got > want*1.001 {
			t.Errorf("%s: server CPU %.3f µs per call, want 3 ms over %d calls = %.3f", name, got, calls[name], want)
		}
	}
	if res["a"].Errors != 0 || res["b"].Errors == 0 {
		t.Errorf("errors: a %d (want 0), b %d (want some)", res["a"].Errors, res["b"].Errors)
	}
}

// An op with its own Meter is charged from it alone, the others from the
// run's meter: two servers measured side by side each charge their own.
func TestRunInterleaved_opMeter(t *testing.T) {
	counter := func(name string, step time.Duration) CPUMeter {
		var used time.Duration
		return func() map[string]time.Duration {
			used += step
			return map[string]time.Duration{name: used}
		}
	}
	noop := func(w, i int) error { time.Sleep(time.Millisecond); return nil }
	res := RunInterleaved(1, 60*time.Millisecond, 3, counter("first", time.Millisecond), []Op{
		{Name: "a", Do: noop},
		{Name: "b", Do: noop, Meter: counter("second", 2*time.Millisecond)},
	})
	for _, c := range []struct {
		op, charged, spared string
		total               float64 // µs over the op's three slices
	}{
		{"a", "first", "second", 3000},
		{"b", "second", "first", 6000},
	} {
		m := res[c.op]
		want := c.total / float64(m.Requests)
		if got := m.CPUusPerRequest[c.charged]; got < want*0.999 || got > want*1.001 {
			t.Errorf("%s: %s CPU %.3f µs per call, want %.3f", c.op, c.charged, got, want)
		}
		if got, ok := m.CPUusPerRequest[c.spared]; ok {
			t.Errorf("%s: charged %.3f µs per call of %s, which it does not use", c.op, got, c.spared)
		}
	}
}

// ProcessCPU reads this process's CPU time, and it grows with work done:
// spinning must show up as at least 100 ms of CPU before a generous wall
// deadline (the machine may be busy with other tests).
func TestProcessCPU(t *testing.T) {
	before, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	x := 0
	for {
		for range 1 << 20 {
			x++
		}
		now, err := ProcessCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if now-before >= 100*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s of spinning counted as %v of CPU (x=%d)", now-before, x)
		}
	}
	if _, err := ProcessCPU(1 << 30); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}

func TestParseMachineCPU(t *testing.T) {
	got, err := parseMachineCPU("cpu  2277371 21809 379599 8914151 21703 0 23737 198094 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	total := time.Duration(2277371+21809+379599+8914151+21703+0+23737+198094) * clockTick
	if want := (MachineCPU{Idle: (8914151 + 21703) * clockTick, Steal: 198094 * clockTick, Total: total}); got != want {
		t.Fatalf("%+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 3", "cpu 1 2 3 x 5 6 7 8"} {
		if _, err := parseMachineCPU(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	// The machine's own file parses, and its idle time grows.
	a, err := ReadMachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if b, err := ReadMachineCPU(); err != nil || b.Idle < a.Idle || b.Steal < a.Steal || b.Total <= a.Total {
		t.Fatalf("%+v then %+v (%v)", a, b, err)
	}
}
