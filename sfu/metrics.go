package sfu

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the forwarding path's running totals. Each Track and
// DownTrack keeps its own, touched only by its own goroutines, so the hot
// loop never contends on a shared cache line; a scrape adds up the live ones
// and the totals folded in from those that ended.
type counters struct {
	packetsIn, bytesIn   atomic.Uint64
	packetsOut, bytesOut atomic.Uint64
	nacks, retransmits   atomic.Uint64
	keyframeRequests     atomic.Uint64
}

func (c *counters) addTo(d *counters) {
	d.packetsIn.Add(c.packetsIn.Load())
	d.bytesIn.Add(c.bytesIn.Load())
	d.packetsOut.Add(c.packetsOut.Load())
	d.bytesOut.Add(c.bytesOut.Load())
	d.nacks.Add(c.nacks.Load())
	d.retransmits.Add(c.retransmits.Load())
	d.keyframeRequests.Add(c.keyframeRequests.Load())
}

var (
	descRooms        = prometheus.NewDesc("switchboard_rooms", "Rooms open now.", nil, nil)
	descParticipants = prometheus.NewDesc("switchboard_participants", "Participants in rooms now.", nil, nil)
	descTracks       = prometheus.NewDesc("switchboard_tracks", "Published tracks now.", []string{"kind"}, nil)
	descPacketsIn    = prometheus.NewDesc("switchboard_packets_received_total", "RTP packets received from publishers.", nil, nil)
	descBytesIn      = prometheus.NewDesc("switchboard_bytes_received_total", "RTP bytes received from publishers.", nil, nil)
	descPacketsOut   = prometheus.NewDesc("switchboard_packets_sent_total", "RTP packets forwarded to subscribers (retransmissions excluded).", nil, nil)
	descBytesOut     = prometheus.NewDesc("switchboard_bytes_sent_total", "RTP payload and header bytes forwarded to subscribers.", nil, nil)
	descNacks        = prometheus.NewDesc("switchboard_nacks_received_total", "NACK feedback packets received from subscribers.", nil, nil)
	descRetransmits  = prometheus.NewDesc("switchboard_packets_retransmitted_total", "Packets resent from the cache in answer to NACKs.", nil, nil)
	descKeyframes    = prometheus.NewDesc("switchboard_keyframe_requests_total", "PLIs sent to publishers.", nil, nil)
)

// Describe implements prometheus.Collector.
func (rs *Rooms) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRooms, descParticipants, descTracks, descPacketsIn, descBytesIn,
		descPacketsOut, descBytesOut, descNacks, descRetransmits, descKeyframes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (rs *Rooms) Collect(ch chan<- prometheus.Metric) {
	var sum counters
	rs.ended.addTo(&sum)
	tracks := map[string]int{"audio": 0, "video": 0}
	rs.mu.Lock()
	rooms, participants := len(rs.rooms), 0
	for _, r := range rs.rooms {
		r.mu.Lock()
		participants += len(r.participants)
		for _, t := range r.tracks {
			tracks[t.info.Kind.String()]++
			t.stats.addTo(&sum)
			for _, d := range *t.downs.Load() {
				d.stats.addTo(&sum)
			}
		}
		r.mu.Unlock()
	}
	rs.mu.Unlock()
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v *atomic.Uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v.Load()))
	}
	gauge(descRooms, rooms)
	gauge(descParticipants, participants)
	for kind, n := range tracks {
		gauge(descTracks, n, kind)
	}
	counter(descPacketsIn, &sum.packetsIn)
	counter(descBytesIn, &sum.bytesIn)
	counter(descPacketsOut, &sum.packetsOut)
	counter(descBytesOut, &sum.bytesOut)
	counter(descNacks, &sum.nacks)
	counter(descRetransmits, &sum.retransmits)
	counter(descKeyframes, &sum.keyframeRequests)
}
