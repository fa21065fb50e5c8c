package bench

import (
	"bytes"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// GCTraceEnv is what a Go process's environment needs for GCTrace to follow
// its collector: the runtime then writes a line to stderr for every cycle.
const GCTraceEnv = "gctrace=1"

// GCTrace follows the GODEBUG=gctrace=1 lines a Go process writes into a
// log file and adds up the CPU its collector reports. Vault's own CPU
// from /proc does not say how much of it went to collecting a heap that
// the dev server's in-memory storage makes large; this estimates it. The
// runtime times its mark workers with the wall clock while they hold a P,
// so on a machine shared with other busy processes the figure overstates;
// and a cycle is counted when its line is written, at its end. Lines the
// process logs through its logger (a plugin's stderr, relayed by Vault)
// carry a prefix and are not counted.
type GCTrace struct {
	path   string
	off    int64
	cycles int
	cpu    time.Duration
}

// NewGCTrace follows the log at path from its start.
func NewGCTrace(path string) *GCTrace { return &GCTrace{path: path} }

// Read returns the collector's CPU time and number of cycles up to the
// last complete line written to the log so far.
func (g *GCTrace) Read() (time.Duration, int, error) {
	f, err := os.Open(g.path)
	if err != nil {
		return g.cpu, g.cycles, err
	}
	defer f.Close()
	if _, err := f.Seek(g.off, io.SeekStart); err != nil {
		return g.cpu, g.cycles, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return g.cpu, g.cycles, err
	}
	// A line still being written is read next time, whole.
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return g.cpu, g.cycles, nil
	}
	g.off += int64(end + 1)
	for _, line := range strings.Split(string(b[:end]), "\n") {
		if d, ok := gcLineCPU(line); ok {
			g.cpu += d
			g.cycles++
		}
	}
	return g.cpu, g.cycles, nil
}

// gcLineCPU returns the CPU time of one gctrace line:
//
//	gc 12 @3.456s 2%: 0.02+1.5+0.03 ms clock, 0.05+0.4/1.2/2.1+0.07 ms cpu, 300->310->150 MB, ...
//
// its "ms cpu" field is the stop-the-world, assist, background, idle and
// stop-the-world mark phases' CPU, summed here (idle marking runs on a
// core nothing else wanted, but it is still the collector's).
func gcLineCPU(line string) (time.Duration, bool) {
	if !strings.HasPrefix(line, "gc ") {
		return 0, false
	}
	head, _, ok := strings.Cut(line, " ms cpu")
	if !ok {
		return 0, false
	}
	field := head[strings.LastIndexByte(head, ' ')+1:]
	var ms float64
	for _, part := range strings.FieldsFunc(field, func(r rune) bool { return r == '+' || r == '/' }) {
		v, err := strconv.ParseFloat(part, 64)
		if err != nil {
			return 0, false
		}
		ms += v
	}
	return time.Duration(math.Round(ms * float64(time.Millisecond))), true
}
