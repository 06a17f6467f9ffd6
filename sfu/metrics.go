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
	layerSwitches        atomic.Uint64
	paddingBytes         atomic.Uint64 // bandwidth probes, not media
}

// Traffic is the RTP bytes received and sent since the rooms started (the
// metrics' bytes_received_total and bytes_sent_total), for a node's load.
func (rs *Rooms) Traffic() (in, out uint64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	in, out = rs.ended.bytesIn.Load(), rs.ended.bytesOut.Load()
	for _, r := range rs.rooms {
		r.mu.Lock()
		for _, t := range r.tracks {
			// A track's stats hold its down-tracks' that were removed.
			in, out = in+t.stats.bytesIn.Load(), out+t.stats.bytesOut.Load()
			for _, d := range *t.downs.Load() {
				out += d.stats.bytesOut.Load()
			}
		}
		r.mu.Unlock()
	}
	return in, out
}

func (c *counters) addTo(d *counters) {
	d.packetsIn.Add(c.packetsIn.Load())
	d.bytesIn.Add(c.bytesIn.Load())
	d.packetsOut.Add(c.packetsOut.Load())
	d.bytesOut.Add(c.bytesOut.Load())
	d.nacks.Add(c.nacks.Load())
	d.retransmits.Add(c.retransmits.Load())
	d.keyframeRequests.Add(c.keyframeRequests.Load())
	d.layerSwitches.Add(c.layerSwitches.Load())
	d.paddingBytes.Add(c.paddingBytes.Load())
}

// forwardLatency samples, for one packet in latencySample, the time from
// reading it off the publisher's socket to the last subscriber's write
// returning: the fan-out cost a packet sees, network excluded.
var forwardLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
	Name:    "switchboard_forwarding_latency_seconds",
	Help:    "Time from receiving a packet to having written it to every subscriber (sampled).",
	Buckets: []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3},
})

// latencySample: one packet in this many is timed, so the clock reads stay
// off the per-packet cost.
const latencySample = 64

// bweBuckets are the histogram buckets of subscribers' bandwidth estimates.
var bweBuckets = []float64{100e3, 250e3, 500e3, 1e6, 2e6, 4e6, 8e6, 16e6}

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
	descPadding      = prometheus.NewDesc("switchboard_probe_padding_bytes_total", "RTP padding sent to subscribers to probe their bandwidth (not in bytes_sent).", nil, nil)
	descSwitches     = prometheus.NewDesc("switchboard_layer_switches_total", "Simulcast layer switches made for subscribers.", nil, nil)
	descPaused       = prometheus.NewDesc("switchboard_paused_videos", "Videos a subscriber is not sent now (no bandwidth, or not visible).", nil, nil)
	descBWE          = prometheus.NewDesc("switchboard_subscriber_bandwidth_bps", "Subscribers' bandwidth estimates now.", nil, nil)
	descPanics       = prometheus.NewDesc("switchboard_panics_total", "Panics contained: each ended one participant (or, in signaling, one message) instead of the server.", nil, nil)
	descICERestarts  = prometheus.NewDesc("switchboard_ice_restarts_total", "Subscriber connections the server renegotiated with an ICE restart (transport failed, or the client asked).", nil, nil)
	descCongested    = prometheus.NewDesc("switchboard_congested_subscribers", "Subscribers whose link now fills a queue or loses over a tenth of its packets.", nil, nil)
)

// Describe implements prometheus.Collector.
func (rs *Rooms) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRooms, descParticipants, descTracks, descPacketsIn, descBytesIn,
		descPacketsOut, descBytesOut, descNacks, descRetransmits, descKeyframes, descSwitches, descPadding, descPaused, descBWE, descCongested, descICERestarts, descPanics} {
		ch <- d
	}
	forwardLatency.Describe(ch)
}

// Collect implements prometheus.Collector.
func (rs *Rooms) Collect(ch chan<- prometheus.Metric) {
	var sum counters
	rs.ended.addTo(&sum)
	tracks := map[string]int{"audio": 0, "video": 0}
	rs.mu.Lock()
	rooms, participants, paused, congested := len(rs.rooms), 0, 0, 0
	bwe := make(map[float64]uint64, len(bweBuckets))
	var bweCount uint64
	var bweSum float64
	for _, r := range rs.rooms {
		r.mu.Lock()
		participants += len(r.participants)
		for _, p := range r.participants {
			e := p.bwe.Snapshot()
			if e.Congested {
				congested++
			}
			est := float64(e.Target)
			bweCount++
			bweSum += est
			for _, b := range bweBuckets {
				if est <= b {
					bwe[b]++
				}
			}
		}
		for _, t := range r.tracks {
			tracks[t.info.Kind.String()]++
			t.stats.addTo(&sum)
			for _, d := range *t.downs.Load() {
				d.stats.addTo(&sum)
				d.mu.Lock()
				if d.target < 0 {
					paused++
				}
				d.mu.Unlock()
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
	counter(descSwitches, &sum.layerSwitches)
	counter(descPadding, &sum.paddingBytes)
	counter(descICERestarts, &rs.iceRestarts)
	counter(descPanics, &panics)
	gauge(descPaused, paused)
	gauge(descCongested, congested)
	ch <- prometheus.MustNewConstHistogram(descBWE, bweCount, bweSum, bwe)
	forwardLatency.Collect(ch)
}
