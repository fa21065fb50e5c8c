// Package bench measures cryptokeys against the Vault paths a user would
// otherwise pick (keys in KV v2, Vault tokens as keys), side by side on
// real Vault servers, and writes the figures to bin/bench.json.
package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Measurement is one load run: throughput and latency percentiles.
type Measurement struct {
	RPS      float64 `json:"rps"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	// CPUusPerRequest is the CPU time each metered process spent per call
	// while the op ran (see CPUMeter): where a request's cost goes.
	CPUusPerRequest map[string]float64 `json:"cpu_us_per_request,omitempty"`
}

// CPUMeter returns the CPU time each process of interest has used so far,
// by name ("vault", "plugin", "load"). RunInterleaved reads it around every
// slice and charges the difference to the slice's op.
type CPUMeter func() map[string]time.Duration

// Op is one measured operation of an interleaved run.
type Op struct {
	Name string
	Do   func(worker, i int) error
	// Meter, when set, reads this op's CPU instead of RunInterleaved's
	// meter: ops of one run that hit different servers each charge their
	// slices to their own server's processes.
	Meter CPUMeter
}

// RunInterleaved measures ops side by side: rounds times over, each op in
// turn runs for d/rounds from concurrency workers, and each op's figures
// add up its slices (an op error counts as an error, not a request). A
// machine whose speed drifts during the run (other tenants, GC of the
// server, a CI neighbour) then slows every op alike, so the ratios
// between them hold even when the absolute figures do not. meter (or an
// op's own Meter) may be nil.
func RunInterleaved(concurrency int, d time.Duration, rounds int, meter CPUMeter, ops []Op) map[string]Measurement {
	samples := make([]sample, len(ops))
	for range rounds {
		for i, op := range ops {
			m := meter
			if op.Meter != nil {
				m = op.Meter
			}
			var before map[string]time.Duration
			if m != nil {
				before = m()
			}
			samples[i].run(concurrency, d/time.Duration(rounds), op.Do)
			if m != nil {
				samples[i].charge(before, m())
			}
		}
	}
	out := make(map[string]Measurement, len(ops))
	for i, op := range ops {
		out[op.Name] = samples[i].measurement()
	}
	return out
}

// sample accumulates the latencies, errors, time and CPU of one op's runs.
type sample struct {
	latencies []time.Duration
	errors    int
	elapsed   time.Duration
	calls     int // op calls so far, so i keeps counting across slices
	cpu       map[string]time.Duration
}

// charge adds the CPU each process used between two meter readings.
func (m *sample) charge(before, after map[string]time.Duration) {
	if m.cpu == nil {
		m.cpu = map[string]time.Duration{}
	}
	for name, t := range after {
		m.cpu[name] += t - before[name]
	}
}

func (m *sample) measurement() Measurement {
	all := m.latencies
	slices.Sort(all)
	out := Measurement{Requests: len(all), Errors: m.errors}
	if m.elapsed > 0 {
		out.RPS = float64(len(all)) / m.elapsed.Seconds()
	}
	if len(all) > 0 {
		out.P50us = float64(all[len(all)*50/100].Microseconds())
		out.P99us = float64(all[min(len(all)-1, len(all)*99/100)].Microseconds())
	}
	if n := len(all) + m.errors; n > 0 && m.cpu != nil {
		out.CPUusPerRequest = map[string]float64{}
		for name, t := range m.cpu {
			out.CPUusPerRequest[name] = float64(t.Microseconds()) / float64(n)
		}
	}
	return out
}

func (m *sample) run(concurrency int, d time.Duration, op func(worker, i int) error) {
	var mu sync.Mutex
	var all []time.Duration
	errors := 0
	base := m.calls
	calls := 0
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			errs, i := 0, base
			for ; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				if err := op(w, i); err != nil {
					errs++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errors += errs
			calls = max(calls, i-base)
			mu.Unlock()
		})
	}
	wg.Wait()
	m.elapsed += time.Since(start)
	m.latencies = append(m.latencies, all...)
	m.errors += errors
	m.calls += calls
}

// Client sends raw requests to Vault over kept-alive connections, with as
// little client-side work as possible: the load generator shares the
// machine with the server.
type Client struct {
	Addr, Token string
	HTTP        *http.Client
}

func NewClient(addr, token string, concurrency int) *Client {
	return &Client{Addr: addr, Token: token, HTTP: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: concurrency * 2, MaxIdleConns: concurrency * 2},
	}}
}

// send makes one request and returns the reply's status and body.
func (c *Client) send(method, path string, header http.Header, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.Addr+"/v1/"+path, rd)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("X-Vault-Token", c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return resp.StatusCode, got, err
}

// GetJSON reads path and decodes the reply into out.
func (c *Client) GetJSON(path string, out any) error {
	status, body, err := c.send("GET", path, nil, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", path, status)
	}
	return json.Unmarshal(body, out)
}

// Do sends one request and checks the status and, when want is non-nil,
// that the body contains it.
func (c *Client) Do(method, path string, body []byte, status int, want []byte) error {
	return c.DoWith(method, path, nil, body, status, want)
}

// DoWith is Do with extra request headers.
func (c *Client) DoWith(method, path string, header http.Header, body []byte, status int, want []byte) error {
	code, got, err := c.send(method, path, header, body)
	if err != nil {
		return err
	}
	if code != status {
		return fmt.Errorf("%s %s: status %d", method, path, code)
	}
	if want != nil && !bytes.Contains(got, want) {
		return fmt.Errorf("%s %s: reply lacks %q", method, path, want)
	}
	return nil
}
