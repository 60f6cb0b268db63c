package actors

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the node's Prometheus collectors. Register them with
// Register; a nil registry keeps them unexported (tests).
type Metrics struct {
	Received        *prometheus.CounterVec
	Attempts        *prometheus.CounterVec
	AttemptLatency  prometheus.Histogram
	EndToEnd        prometheus.Histogram
	DeadLettered    *prometheus.CounterVec
	SignatureReject *prometheus.CounterVec

	// Node-wide totals, kept beside the labelled counters so a reader
	// (the per-minute rollups) needs four loads, not a walk over every
	// destination's series.
	nReceived, nDelivered, nFailed, nDeadLettered atomic.Int64
}

// Totals are node-wide counts since the process started.
type Totals struct {
	Received     int64 // events accepted (not duplicates or refusals)
	Delivered    int64 // attempts that succeeded
	Failed       int64 // attempts that failed
	DeadLettered int64 // deliveries that went to a dead-letter queue
}

// Totals reads the node-wide counts.
func (m *Metrics) Totals() Totals {
	return Totals{Received: m.nReceived.Load(), Delivered: m.nDelivered.Load(), Failed: m.nFailed.Load(), DeadLettered: m.nDeadLettered.Load()}
}

// NewMetrics builds the collectors.
func NewMetrics() *Metrics {
	return &Metrics{
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookops_events_received_total", Help: "Webhooks received, by source and outcome.",
		}, []string{"source", "outcome"}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookops_delivery_attempts_total", Help: "Delivery attempts, by destination and outcome.",
		}, []string{"destination", "outcome"}),
		AttemptLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "webhookops_delivery_attempt_seconds", Help: "Duration of one delivery attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		EndToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "webhookops_ingest_to_delivered_seconds", Help: "From the 2xx to the sender to the receiver's 2xx.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 20),
		}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookops_dead_lettered_total", Help: "Events dead-lettered, by destination.",
		}, []string{"destination"}),
		SignatureReject: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookops_signature_rejected_total", Help: "Requests refused for their signature, by source and reason.",
		}, []string{"source", "reason"}),
	}
}

// Register adds the collectors to r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.Received, m.Attempts, m.AttemptLatency, m.EndToEnd, m.DeadLettered, m.SignatureReject} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *Metrics) received(source, outcome string) {
	m.Received.WithLabelValues(source, outcome).Inc()
	if outcome == "accepted" {
		m.nReceived.Add(1)
	}
}

func (m *Metrics) attempt(dest string, ok bool, d time.Duration) {
	outcome := "failed"
	if ok {
		outcome = "delivered"
		m.nDelivered.Add(1)
	} else {
		m.nFailed.Add(1)
	}
	m.Attempts.WithLabelValues(dest, outcome).Inc()
	m.AttemptLatency.Observe(d.Seconds())
}

func (m *Metrics) delivered(endToEnd time.Duration) { m.EndToEnd.Observe(endToEnd.Seconds()) }

func (m *Metrics) deadLettered(dest string) {
	m.DeadLettered.WithLabelValues(dest).Inc()
	m.nDeadLettered.Add(1)
}

// queueGauges holds every destination's queueGauge, counted once when the
// node starts and kept by the destination actors from then on.
type queueGauges struct {
	mu sync.RWMutex // guards m
	m  map[string]*queueGauge
}

func newQueueGauges() *queueGauges { return &queueGauges{m: map[string]*queueGauge{}} }

// get returns dest's gauge, adding a zero one.
func (g *queueGauges) get(dest string) *queueGauge {
	g.mu.RLock()
	q, ok := g.m[dest]
	g.mu.RUnlock()
	if ok {
		return q
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if q, ok = g.m[dest]; !ok {
		q = &queueGauge{}
		g.m[dest] = q
	}
	return q
}

// QueueCounts returns a destination's pending deliveries and dead letters
// as its actor last saw them durable: two loads, however long the queue.
func (n *Node) QueueCounts(dest string) (depth, dead int64) {
	n.gauges.mu.RLock()
	q, ok := n.gauges.m[dest]
	n.gauges.mu.RUnlock()
	if !ok {
		return 0, 0
	}
	return q.depth.Load(), q.dead.Load()
}
