package signal

import (
	"maps"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// resumeStats count how clients came back after losing their connection.
type resumeStats struct {
	resumes, resumeFailures, rejoins atomic.Uint64
}

var (
	descResumes        = prometheus.NewDesc("switchboard_resumes_total", "Sessions a client resumed on a new WebSocket after its connection broke.", nil, nil)
	descResumeFailures = prometheus.NewDesc("switchboard_resume_failures_total", "Resumes refused (session ended, unknown secret, too much missed); the client joins again.", nil, nil)
	descRejoins        = prometheus.NewDesc("switchboard_rejoins_total", "Joins that replaced a session of the same participant (same identity, or a failed resume).", nil, nil)
	descAway           = prometheus.NewDesc("switchboard_reconnecting_participants", "Participants whose client is away now, within the resume grace.", nil, nil)
)

// Describe implements prometheus.Collector.
func (h *Handler) Describe(ch chan<- *prometheus.Desc) {
	ch <- descResumes
	ch <- descResumeFailures
	ch <- descRejoins
	ch <- descAway
}

// Collect implements prometheus.Collector.
func (h *Handler) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v *atomic.Uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v.Load()))
	}
	counter(descResumes, &h.stats.resumes)
	counter(descResumeFailures, &h.stats.resumeFailures)
	counter(descRejoins, &h.stats.rejoins)
	ch <- prometheus.MustNewConstMetric(descAway, prometheus.GaugeValue, float64(h.away()))
}

// away counts the members without a socket.
func (h *Handler) away() int {
	h.mu.Lock()
	members := slices.Collect(maps.Values(h.members))
	h.mu.Unlock()
	n := 0
	for _, m := range members {
		m.mu.Lock()
		if m.sess == nil && !m.gone {
			n++
		}
		m.mu.Unlock()
	}
	return n
}
