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

	relayPacketsSent = prometheus.NewDesc("switchboard_cluster_relay_packets_sent_total",
		"RTP packets sent to another node over the trunk.", []string{"peer"}, nil)
	relayBytesSent = prometheus.NewDesc("switchboard_cluster_relay_bytes_sent_total",
		"SRTP bytes sent to another node over the trunk.", []string{"peer"}, nil)
	relayPacketsReceived = prometheus.NewDesc("switchboard_cluster_relay_packets_received_total",
		"RTP packets received from another node over the trunk.", []string{"peer"}, nil)
	relayBytesReceived = prometheus.NewDesc("switchboard_cluster_relay_bytes_received_total",
		"SRTP bytes received from another node over the trunk.", []string{"peer"}, nil)
	relayLost = prometheus.NewDesc("switchboard_cluster_relay_packets_lost_total",
		"Packets from another node missing despite NACKs.", []string{"peer"}, nil)
	relayRTT = prometheus.NewDesc("switchboard_cluster_relay_rtt_seconds",
		"Round-trip time to another node over the trunk.", []string{"peer"}, nil)
	relayStreams = prometheus.NewDesc("switchboard_cluster_relay_streams",
		"Track layers this node sends to another node (one copy each, whatever the number of subscribers there).", []string{"peer"}, nil)
	relayDropped = prometheus.NewDesc("switchboard_cluster_relay_dropped_total",
		"Trunk packets dropped on arrival, by reason.", []string{"reason"}, nil)
)

// Describe implements prometheus.Collector.
func (n *Node) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{nodesDesc, stateDesc, connectedDesc, registryErrorsDesc, redirectsDesc,
		relayPacketsSent, relayBytesSent, relayPacketsReceived, relayBytesReceived, relayLost, relayRTT, relayStreams, relayDropped} {
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
	if n.trunkEP == nil {
		return
	}
	streams := n.bridge.relayStreams()
	for _, p := range n.trunkEP.Peers() {
		st, id := p.Stats(), p.ID()
		ch <- prometheus.MustNewConstMetric(relayPacketsSent, prometheus.CounterValue, float64(st.PacketsSent), id)
		ch <- prometheus.MustNewConstMetric(relayBytesSent, prometheus.CounterValue, float64(st.BytesSent), id)
		ch <- prometheus.MustNewConstMetric(relayPacketsReceived, prometheus.CounterValue, float64(st.PacketsReceived), id)
		ch <- prometheus.MustNewConstMetric(relayBytesReceived, prometheus.CounterValue, float64(st.BytesReceived), id)
		ch <- prometheus.MustNewConstMetric(relayLost, prometheus.CounterValue, float64(st.PacketsLost), id)
		ch <- prometheus.MustNewConstMetric(relayRTT, prometheus.GaugeValue, st.RTT.Seconds(), id)
		ch <- prometheus.MustNewConstMetric(relayStreams, prometheus.GaugeValue, float64(streams[id]), id)
	}
	es := n.trunkEP.Stats()
	for reason, v := range map[string]uint64{"unknown-source": es.UnknownSource, "malformed": es.Malformed,
		"auth-failed": es.AuthFailed, "replayed": es.Replayed, "no-stream": es.NoStream, "buffer-full": es.BufferFull} {
		ch <- prometheus.MustNewConstMetric(relayDropped, prometheus.CounterValue, float64(v), reason)
	}
}
