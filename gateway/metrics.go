package gateway

import (
	"math"
	"net/http"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/verifier"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the gateway's Prometheus metrics, in a registry of its own
// (so several gateways in one test process do not collide).
type metrics struct {
	reg           *prometheus.Registry
	decisions     *prometheus.CounterVec
	verifies      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	cacheHits     prometheus.Counter
	cacheMisses   prometheus.Counter
	tokenRenewals prometheus.Counter
}

func newMetrics(g *Gateway) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cryptokeys_gateway_decisions_total",
		Help: "Answers given, by code (verify codes plus NO_KEY and NO_ROUTE).",
	}, []string{"code"})
	m.verifies = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cryptokeys_gateway_verifications_total",
		Help: "Verifications by the embedded verifier, by code.",
	}, []string{"code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cryptokeys_gateway_verify_duration_seconds",
		Help:    "Time to verify one request, by where the answer came from (cache or engine).",
		Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"source"})
	m.cacheHits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cryptokeys_gateway_cache_hits_total",
		Help: "Verifications answered from the verifier's cache.",
	})
	m.cacheMisses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cryptokeys_gateway_cache_misses_total",
		Help: "Verifications that were not answered from the cache (the engine was asked, or the key was refused offline).",
	})
	m.tokenRenewals = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cryptokeys_gateway_token_renewals_total",
		Help: "Renewals of the gateway's own Vault token.",
	})
	feedAge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cryptokeys_gateway_feed_last_read_age_seconds",
		Help: "Seconds since the gateway last read the revocations feed successfully (its own probe, once a second; +Inf before the first read).",
	}, func() float64 {
		t := g.lastFeedOK.Load()
		if t == 0 {
			return math.Inf(1)
		}
		return time.Since(time.Unix(0, t)).Seconds()
	})
	tokenTTL := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cryptokeys_gateway_token_ttl_seconds",
		Help: "Seconds until the gateway's Vault token expires (+Inf: it does not expire or is not known yet).",
	}, func() float64 {
		t := g.tokenExpiry.Load()
		if t == 0 {
			return math.Inf(1)
		}
		return time.Until(time.Unix(0, t)).Seconds()
	})
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cryptokeys_gateway_ready",
		Help: "1 when /readyz answers 200, else 0.",
	}, func() float64 {
		if ok, _ := g.ready(); ok {
			return 1
		}
		return 0
	})
	m.reg.MustRegister(m.decisions, m.verifies, m.latency, m.cacheHits, m.cacheMisses, m.tokenRenewals,
		feedAge, tokenTTL, ready,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(res verifier.Result, d time.Duration) {
	code := res.Code
	if code == "" {
		code = verifier.CodeUnavailable
	}
	m.verifies.WithLabelValues(code).Inc()
	source := "engine"
	if res.Cached {
		source = "cache"
		m.cacheHits.Inc()
	} else {
		m.cacheMisses.Inc()
	}
	m.latency.WithLabelValues(source).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
