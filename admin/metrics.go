package admin

import (
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector reports what the node holds rather than what happened:
// queue depth and dead letters per destination, paused destinations,
// agents, active replays. Queue depth and dead letters are the counters
// each destination's actor keeps (actors.Node.QueueCounts): a scrape reads
// two numbers per destination and never scans a queue or waits on an
// actor, so its cost does not grow with the backlog. One set of metrics is
// still reused for MetricsCacheFor.
type stateCollector struct {
	s *Server

	queueDepth  *prometheus.Desc
	deadLetters *prometheus.Desc
	paused      *prometheus.Desc
	agents      *prometheus.Desc
	agentsUp    *prometheus.Desc
	replays     *prometheus.Desc

	// A cluster member's, per partition.
	raftLeader     *prometheus.Desc
	raftTerm       *prometheus.Desc
	raftApplied    *prometheus.Desc
	raftDelivering *prometheus.Desc
	metaLeader     *prometheus.Desc
	metaTerm       *prometheus.Desc
	metaApplied    *prometheus.Desc

	mu    sync.Mutex // guards the cache
	at    time.Time
	cache []prometheus.Metric
}

func newStateCollector(s *Server) *stateCollector {
	return &stateCollector{
		s:           s,
		queueDepth:  prometheus.NewDesc("webhookops_queue_depth", "Deliveries pending, by destination.", []string{"destination"}, nil),
		deadLetters: prometheus.NewDesc("webhookops_dead_letters", "Events in the dead-letter queue, by destination.", []string{"destination"}, nil),
		paused:      prometheus.NewDesc("webhookops_destination_paused", "1 while a destination is paused.", []string{"destination"}, nil),
		agents:      prometheus.NewDesc("webhookops_agents", "Agents configured.", nil, nil),
		agentsUp:    prometheus.NewDesc("webhookops_agents_online", "Agents connected now.", nil, nil),
		replays:     prometheus.NewDesc("webhookops_replays_active", "Replays queued or running.", nil, nil),

		raftLeader:     prometheus.NewDesc("webhookops_cluster_leader", "Cluster member: the node leading the partition as this node knows it (0 while none is).", []string{"partition"}, nil),
		raftTerm:       prometheus.NewDesc("webhookops_cluster_term", "Cluster member: the partition's raft term as this node knows it.", []string{"partition"}, nil),
		raftApplied:    prometheus.NewDesc("webhookops_cluster_applied_index", "Cluster member: the last raft entry of the partition applied here; the commit lag of a replica is the largest over the members minus its own.", []string{"partition"}, nil),
		metaLeader:     prometheus.NewDesc("webhookops_cluster_metadata_leader", "Cluster member: the node leading the metadata shard (configuration, tokens) as this node knows it; 0 while none is, when configuration writes answer 503.", nil, nil),
		metaTerm:       prometheus.NewDesc("webhookops_cluster_metadata_term", "Cluster member: the metadata shard's raft term as this node knows it.", nil, nil),
		metaApplied:    prometheus.NewDesc("webhookops_cluster_metadata_applied_index", "Cluster member: the last metadata shard entry applied here; a member behind the others has not picked up the latest configuration yet.", nil, nil),
		raftDelivering: prometheus.NewDesc("webhookops_cluster_delivering", "Cluster member: 1 while this node delivers the partition's destinations (it leads the partition and holds its lease).", []string{"partition"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queueDepth, c.deadLetters, c.paused, c.agents, c.agentsUp, c.replays,
		c.raftLeader, c.raftTerm, c.raftApplied, c.raftDelivering, c.metaLeader, c.metaTerm, c.metaApplied} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if c.cache == nil || time.Since(c.at) >= c.s.cfg.MetricsCacheFor {
		c.cache = c.gather()
		c.at = time.Now()
	}
	ms := c.cache
	c.mu.Unlock()
	for _, m := range ms {
		ch <- m
	}
	ch <- prometheus.MustNewConstMetric(c.replays, prometheus.GaugeValue, float64(c.s.node.ActiveReplays()))
}

func (c *stateCollector) gather() []prometheus.Metric {
	snap := c.s.node.Snapshot()
	var out []prometheus.Metric
	for _, slug := range slices.Sorted(maps.Keys(snap.Destinations)) {
		// In a cluster only the member delivering a destination knows its
		// queue: the others' counts would be stale, and a sum over members
		// would count it again.
		if c.s.node.Delivers(slug) {
			depth, dead := c.s.node.QueueCounts(slug)
			out = append(out,
				prometheus.MustNewConstMetric(c.queueDepth, prometheus.GaugeValue, float64(depth), slug),
				prometheus.MustNewConstMetric(c.deadLetters, prometheus.GaugeValue, float64(dead), slug))
		}
		p := 0.0
		if snap.Destinations[slug].Paused {
			p = 1
		}
		out = append(out, prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, p, slug))
	}
	online := 0
	if c.s.cfg.Agents != nil {
		for id := range snap.Agents {
			if up, _ := c.s.cfg.Agents.Online(id); up {
				online++
			}
		}
	}
	out = append(out,
		prometheus.MustNewConstMetric(c.agents, prometheus.GaugeValue, float64(len(snap.Agents))),
		prometheus.MustNewConstMetric(c.agentsUp, prometheus.GaugeValue, float64(online)))
	if c.s.cfg.ClusterPartitions != nil {
		parts, err := c.s.cfg.ClusterPartitions()
		if err != nil {
			c.s.log.Warn("metrics: reading the cluster's partitions failed", "err", err)
		}
		for _, p := range parts {
			label := strconv.Itoa(int(p.Partition))
			delivering := 0.0
			if p.Delivering {
				delivering = 1
			}
			out = append(out,
				prometheus.MustNewConstMetric(c.raftLeader, prometheus.GaugeValue, float64(p.Leader), label),
				prometheus.MustNewConstMetric(c.raftTerm, prometheus.GaugeValue, float64(p.Term), label),
				prometheus.MustNewConstMetric(c.raftApplied, prometheus.GaugeValue, float64(p.AppliedIndex), label),
				prometheus.MustNewConstMetric(c.raftDelivering, prometheus.GaugeValue, delivering, label))
		}
	}
	if c.s.cfg.ClusterMetadata != nil {
		if m, err := c.s.cfg.ClusterMetadata(); err != nil {
			c.s.log.Warn("metrics: reading the metadata shard failed", "err", err)
		} else {
			out = append(out,
				prometheus.MustNewConstMetric(c.metaLeader, prometheus.GaugeValue, float64(m.Leader)),
				prometheus.MustNewConstMetric(c.metaTerm, prometheus.GaugeValue, float64(m.Term)),
				prometheus.MustNewConstMetric(c.metaApplied, prometheus.GaugeValue, float64(m.AppliedIndex)))
		}
	}
	return out
}
