package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// Phases of a soak sample.
const (
	phaseWarmup = "warmup" // the room is full; not judged yet
	phaseSoak   = "soak"   // the window the trends are judged over
	phaseEmpty  = "empty"  // everyone has left; the server should go idle
)

// soakSample is one second of a soak: the server's state from its
// /metrics, the rates of its counters since the previous sample, and the
// frames each viewer slot decoded. A value that could not be read is NaN.
type soakSample struct {
	T     float64 // seconds since the room filled
	Phase string

	Goroutines, HeapBytes, RSSBytes, OpenFDs float64
	CPUSeconds                               float64 // the server's total, for the idle check
	CPUPercent                               float64 // of one core
	PacketsPerS, NACKsPerS, RetransmitsPerS  float64
	LayerSwitchesPerS, Participants          float64
	// ViewerFPS is per viewer slot: video frames (packets with the marker
	// bit, over all its videos) per second; NaN while being replaced.
	ViewerFPS []float64
}

// metricsSampler scrapes the server and turns its counters into rates.
type metricsSampler struct {
	probe  *serverProbe
	prev   map[string]float64
	prevAt time.Time
}

// gauges and counters the soak reads; the Go and process collectors give
// the first five.
var (
	soakGauges = map[string]func(*soakSample) *float64{
		"go_goroutines":                 func(s *soakSample) *float64 { return &s.Goroutines },
		"go_memstats_heap_alloc_bytes":  func(s *soakSample) *float64 { return &s.HeapBytes },
		"process_resident_memory_bytes": func(s *soakSample) *float64 { return &s.RSSBytes },
		"process_open_fds":              func(s *soakSample) *float64 { return &s.OpenFDs },
		"process_cpu_seconds_total":     func(s *soakSample) *float64 { return &s.CPUSeconds },
		"switchboard_participants":      func(s *soakSample) *float64 { return &s.Participants },
	}
	soakRates = map[string]func(*soakSample) *float64{
		"process_cpu_seconds_total":               func(s *soakSample) *float64 { return &s.CPUPercent },
		"switchboard_packets_sent_total":          func(s *soakSample) *float64 { return &s.PacketsPerS },
		"switchboard_nacks_received_total":        func(s *soakSample) *float64 { return &s.NACKsPerS },
		"switchboard_packets_retransmitted_total": func(s *soakSample) *float64 { return &s.RetransmitsPerS },
		"switchboard_layer_switches_total":        func(s *soakSample) *float64 { return &s.LayerSwitchesPerS },
	}
)

// sample reads the server once; err says it could not be read at all.
func (m *metricsSampler) sample(ctx context.Context, now time.Time) (soakSample, error) {
	s := soakSample{}
	for _, f := range soakGauges {
		*f(&s) = math.NaN()
	}
	for _, f := range soakRates {
		*f(&s) = math.NaN()
	}
	ctx, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
	defer cancel()
	cur, err := m.probe.scrape(ctx)
	if err != nil {
		return s, err
	}
	for name, f := range soakGauges {
		if v, ok := cur[name]; ok {
			*f(&s) = v
		}
	}
	if secs := now.Sub(m.prevAt).Seconds(); m.prev != nil && secs > 0 {
		for name, f := range soakRates {
			v, ok1 := cur[name]
			p, ok2 := m.prev[name]
			if ok1 && ok2 {
				*f(&s) = (v - p) / secs
			}
		}
		s.CPUPercent *= 100
	}
	m.prev, m.prevAt = cur, now
	return s, nil
}

// csvColumns names the columns of the soak's CSV; viewer columns follow.
var csvColumns = []string{"t_s", "phase", "goroutines", "heap_bytes", "rss_bytes", "open_fds", "cpu_percent",
	"packets_per_s", "nacks_per_s", "retransmits_per_s", "layer_switches_per_s", "participants"}

// csvSamples writes samples as CSV, a row at a time, flushed at once so
// that a run stopped midway keeps what it measured.
type csvSamples struct {
	w *csv.Writer
}

func newCSVSamples(w io.Writer, viewers int) (*csvSamples, error) {
	c := &csvSamples{w: csv.NewWriter(w)}
	head := append([]string(nil), csvColumns...)
	for i := range viewers {
		head = append(head, fmt.Sprintf("viewer%d_fps", i))
	}
	return c, c.write(head)
}

func (c *csvSamples) add(s soakSample) error {
	row := []string{strconv.FormatFloat(s.T, 'f', 1, 64), s.Phase}
	for _, v := range []float64{s.Goroutines, s.HeapBytes, s.RSSBytes, s.OpenFDs, s.CPUPercent,
		s.PacketsPerS, s.NACKsPerS, s.RetransmitsPerS, s.LayerSwitchesPerS, s.Participants} {
		row = append(row, csvNum(v))
	}
	for _, v := range s.ViewerFPS {
		row = append(row, csvNum(v))
	}
	return c.write(row)
}

func (c *csvSamples) write(row []string) error {
	if err := c.w.Write(row); err != nil {
		return err
	}
	c.w.Flush()
	return c.w.Error()
}

// csvNum leaves a missing value empty, as spreadsheets expect, and keeps
// two decimals of a rate.
func csvNum(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}
