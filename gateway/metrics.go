package gateway

import (
	"math"
	"net/http"
	"sync"
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
	tokenRenewals prometheus.Counter

	// Series resolved once rather than by WithLabelValues on every request
	// (a hash of the label value and a locked map lookup each): a code's
	// counters on its first use, so /metrics shows the same series as
	// before (none for a code never answered).
	decisionsBy, verifiesBy sync.Map // code -> prometheus.Counter
	latencyBy               sync.Map // source -> prometheus.Observer
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
	m.tokenRenewals = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cryptokeys_gateway_token_renewals_total",
		Help: "Renewals of the gateway's own Vault token.",
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
	m.reg.MustRegister(m.decisions, m.verifies, m.latency, m.tokenRenewals,
		tokenTTL, ready, &verifierCollector{g: g},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(res verifier.Result, d time.Duration) {
	code := res.Code
	if code == "" {
		code = verifier.CodeUnavailable
	}
	counterOf(&m.verifiesBy, m.verifies, code).Inc()
	source := "engine"
	if res.Cached {
		source = "cache"
	}
	o, ok := m.latencyBy.Load(source)
	if !ok {
		o = m.latency.WithLabelValues(source)
		m.latencyBy.Store(source, o)
	}
	o.(prometheus.Observer).Observe(d.Seconds())
}

// decided counts one answer given, by code.
func (m *metrics) decided(code string) {
	counterOf(&m.decisionsBy, m.decisions, code).Inc()
}

// counterOf is vec's counter for code, resolved once. Codes are the
// verifier's and the gateway's own, a bounded set.
func counterOf(by *sync.Map, vec *prometheus.CounterVec, code string) prometheus.Counter {
	if c, ok := by.Load(code); ok {
		return c.(prometheus.Counter)
	}
	c := vec.WithLabelValues(code)
	by.Store(code, c)
	return c
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// verifierCollector turns the embedded verifier's Status into metrics, one
// Status call per scrape.
type verifierCollector struct{ g *Gateway }

var (
	descFeedAge = prometheus.NewDesc("cryptokeys_gateway_feed_last_read_age_seconds",
		"Feed lag: seconds since the embedded verifier was last caught up with the revocations feed (+Inf before the first read).", nil, nil)
	descFeedStale = prometheus.NewDesc("cryptokeys_gateway_feed_stale",
		"1 while the verifier fails closed because the feed has not been read within max_staleness.", nil, nil)
	descHits = prometheus.NewDesc("cryptokeys_gateway_cache_hits_total",
		"Verifications answered from the verifier's cache.", nil, nil)
	descMisses = prometheus.NewDesc("cryptokeys_gateway_cache_misses_total",
		"Verifications the cache could not answer (the engine was asked, or the NOT_FOUND memory or a source limit answered).", nil, nil)
	descHitRatio = prometheus.NewDesc("cryptokeys_gateway_cache_hit_ratio",
		"cache_hits_total / (cache_hits_total + cache_misses_total) since start (NaN before any).", nil, nil)
	descEntries = prometheus.NewDesc("cryptokeys_gateway_cache_entries",
		"Keys in the verifier's cache.", nil, nil)
	descPending = prometheus.NewDesc("cryptokeys_gateway_usage_pending",
		"Uses counted and not yet reported to the engine.", nil, nil)
)

func (c *verifierCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFeedAge, descFeedStale, descHits, descMisses, descHitRatio, descEntries, descPending} {
		ch <- d
	}
}

func (c *verifierCollector) Collect(ch chan<- prometheus.Metric) {
	var st verifier.Status
	age, stale := math.Inf(1), 1.0
	if v := c.g.ver.Load(); v != nil {
		st = v.Status()
		age, stale = st.FeedAge.Seconds(), 0
		if st.Stale {
			stale = 1
		}
	}
	ratio := math.NaN()
	if n := st.CacheHits + st.CacheMisses; n > 0 {
		ratio = float64(st.CacheHits) / float64(n)
	}
	ch <- prometheus.MustNewConstMetric(descFeedAge, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(descFeedStale, prometheus.GaugeValue, stale)
	ch <- prometheus.MustNewConstMetric(descHits, prometheus.CounterValue, float64(st.CacheHits))
	ch <- prometheus.MustNewConstMetric(descMisses, prometheus.CounterValue, float64(st.CacheMisses))
	ch <- prometheus.MustNewConstMetric(descHitRatio, prometheus.GaugeValue, ratio)
	ch <- prometheus.MustNewConstMetric(descEntries, prometheus.GaugeValue, float64(st.CacheEntries))
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(st.PendingUsage))
}
