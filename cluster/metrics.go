package cluster

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	nodesDesc = prometheus.NewDesc("switchboard_cluster_nodes",
		"Nodes of the cluster whose leases are alive, this one included, by state.", []string{"state"}, nil)
	stateDesc = prometheus.NewDesc("switchboard_cluster_state",
		"This node's state: 1 for the state it is in (serving or draining).", []string{"state"}, nil)
	connectedDesc = prometheus.NewDesc("switchboard_cluster_registry_connected",
		"1 while the node is connected to NATS and its registry is set up.", nil, nil)
	registryErrorsDesc = prometheus.NewDesc("switchboard_cluster_registry_errors_total",
		"Registry operations (lease renewals, roster writes, claims) that failed.", nil, nil)
	redirectsDesc = prometheus.NewDesc("switchboard_cluster_redirects_total",
		"Joins sent to another node.", nil, nil)
)

// Describe implements prometheus.Collector.
func (n *Node) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{nodesDesc, stateDesc, connectedDesc, registryErrorsDesc, redirectsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (n *Node) Collect(ch chan<- prometheus.Metric) {
	n.mu.Lock()
	now := time.Now()
	states := map[string]int{Serving: 0, Draining: 0}
	for id, e := range n.view.nodes {
		if n.view.alive(id, now) {
			states[e.lease.State]++
		}
	}
	state := n.state
	n.mu.Unlock()
	for s, c := range states {
		ch <- prometheus.MustNewConstMetric(nodesDesc, prometheus.GaugeValue, float64(c), s)
	}
	for _, s := range []string{Serving, Draining} {
		v := 0.0
		if s == state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, v, s)
	}
	connected := 0.0
	if n.stats.connected.Load() && n.buckets() != nil {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(connectedDesc, prometheus.GaugeValue, connected)
	ch <- prometheus.MustNewConstMetric(registryErrorsDesc, prometheus.CounterValue, float64(n.stats.registryErrors.Load()))
	ch <- prometheus.MustNewConstMetric(redirectsDesc, prometheus.CounterValue, float64(n.stats.redirects.Load()))
}
