package actors

import (
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

func (m *Metrics) received(source, outcome string) { m.Received.WithLabelValues(source, outcome).Inc() }

func (m *Metrics) attempt(dest string, ok bool, d time.Duration) {
	outcome := "failed"
	if ok {
		outcome = "delivered"
	}
	m.Attempts.WithLabelValues(dest, outcome).Inc()
	m.AttemptLatency.Observe(d.Seconds())
}

func (m *Metrics) delivered(endToEnd time.Duration) { m.EndToEnd.Observe(endToEnd.Seconds()) }

func (m *Metrics) deadLettered(dest string) { m.DeadLettered.WithLabelValues(dest).Inc() }
