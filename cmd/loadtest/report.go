package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run measured: the summary table prints it and -json
// writes it. Field names are a stable interface for scripts.
type Report struct {
	Mode  string    `json:"mode"`
	URL   string    `json:"url"`
	Start time.Time `json:"start"`
	// DurationS is the measured window: from when everyone had joined to
	// the end (or Ctrl-C). Rates, loss, latency and CPU cover only it.
	DurationS   float64        `json:"duration_s"`
	Interrupted bool           `json:"interrupted"`
	Config      map[string]any `json:"config"`

	Clients Counts `json:"clients"`
	// Streams counts received tracks: expected from the room sizes, and
	// those that delivered at least one packet.
	Streams StreamCounts `json:"streams"`

	PacketsReceived int64   `json:"packets_received"`
	PacketsLost     int64   `json:"packets_lost"`
	LossRatio       float64 `json:"loss_ratio"`
	// PaddingPackets are padding-only packets (the server's bandwidth
	// probes), not counted in PacketsReceived (synthetic mode).
	PaddingPackets int64 `json:"padding_packets"`
	// LatePackets arrived after a later one: reordered, or resent after a
	// NACK (synthetic mode). Their latency counts in LatencyMS.
	LatePackets int64 `json:"late_packets"`
	// LatencyMS is the added forwarding latency per packet: arrival at the
	// subscriber minus the publisher's send stamp (synthetic mode only).
	LatencyMS *Dist `json:"latency_ms,omitempty"`
	// JitterMS is the RFC 3550 interarrival jitter per received stream.
	JitterMS Dist `json:"jitter_ms"`
	// FirstFrameMS is per subscriber and publisher (synthetic: from the
	// start of the join to the first video packet, which the SFU makes a
	// keyframe) or per tab (chrome: from page load to the first decoded
	// remote frame).
	FirstFrameMS Dist `json:"first_frame_ms"`
	// JoinMS is from dialing the WebSocket to the server's "joined"
	// (synthetic mode).
	JoinMS *Dist `json:"join_ms,omitempty"`
	// BitrateBPS is what each subscriber received, in bit/s.
	BitrateBPS Dist `json:"bitrate_bps"`
	// FrameRate is frames per second per received video stream (synthetic:
	// completed frames; chrome: decoded frames, one sample per second).
	FrameRate Dist     `json:"frame_rate"`
	Freezes   *Freezes `json:"freezes,omitempty"`
	// Server is the SFU's CPU and memory, from its /metrics or, with
	// -server-pid, from /proc.
	Server *ServerStats `json:"server,omitempty"`
	// LoadCPUSeconds is the CPU time of this process during the window: on
	// one host, the load tool competes with the server.
	LoadCPUSeconds float64 `json:"load_cpu_seconds"`
	// Host describes the machine the load ran on, and how busy it was.
	Host Host `json:"host"`

	// Failures says why the run missed its targets; the exit status is 1
	// when it is not empty.
	Failures []string `json:"failures"`
	OK       bool     `json:"ok"`
}

// Host is the load tool's machine: on a shared one, other work distorts
// latency figures, which the load average and the CPU pressure show.
type Host struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	// LoadAvg1 is the one-minute load average at the end of the run.
	LoadAvg1 float64 `json:"loadavg_1m"`
	// CPUPressure is the share of the last minute in which runnable tasks
	// waited for a CPU (Linux PSI "some avg60", percent); -1 if unknown.
	CPUPressure float64 `json:"cpu_pressure_pct"`
}

// hostNow reads the host's description and load.
func hostNow() Host {
	h := Host{CPUs: runtime.NumCPU(), CPUPressure: -1}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			h.LoadAvg1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	if b, err := os.ReadFile("/proc/pressure/cpu"); err == nil {
		for _, f := range strings.Fields(strings.SplitN(string(b), "\n", 2)[0]) {
			if v, ok := strings.CutPrefix(f, "avg60="); ok {
				h.CPUPressure, _ = strconv.ParseFloat(v, 64)
			}
		}
	}
	return h
}

// Counts of clients (synthetic) or tabs (chrome).
type Counts struct {
	Expected int `json:"expected"`
	Joined   int `json:"joined"`
	Failed   int `json:"failed"`
}

// StreamCounts of received tracks.
type StreamCounts struct {
	Expected  int `json:"expected"`
	Receiving int `json:"receiving"`
	// Stalled streams delivered nothing during the window (a video the
	// server paused, for instance).
	Stalled int `json:"stalled"`
}

// Freezes are Chrome's video freezes (inbound-rtp freezeCount and
// totalFreezesDuration) during the window, summed over all streams.
type Freezes struct {
	Count           int64   `json:"count"`
	TotalS          float64 `json:"total_s"`
	PerMinPerStream float64 `json:"per_minute_per_stream"`
}

// ServerStats describe the server during the window.
type ServerStats struct {
	Source     string  `json:"source"` // "metrics" or "pid"
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPercent float64 `json:"cpu_percent"` // of one core
	RSSBytes   int64   `json:"rss_bytes"`   // the largest seen
	// From /metrics when it is reachable.
	PacketsSent            int64    `json:"packets_sent"`
	BytesSent              int64    `json:"bytes_sent"`
	NACKs                  int64    `json:"nacks"`
	Retransmits            int64    `json:"retransmits"`
	PacketsReceived        int64    `json:"packets_received"`
	CPUSecondsPer1kPackets *float64 `json:"cpu_seconds_per_1k_packets,omitempty"`
}

// Dist summarizes a distribution.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	Min  float64 `json:"min"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// distOf summarizes values (nearest-rank percentiles).
func distOf(values []float64) Dist {
	if len(values) == 0 {
		return Dist{}
	}
	v := slices.Clone(values)
	slices.Sort(v)
	var sum float64
	for _, x := range v {
		sum += x
	}
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(v)))) - 1
		return v[min(max(i, 0), len(v)-1)]
	}
	return Dist{N: len(v), Mean: sum / float64(len(v)), Min: v[0], P50: q(0.5), P95: q(0.95), P99: q(0.99), Max: v[len(v)-1]}
}

// finish decides OK from the failures and notes the host's state.
func (r *Report) finish() {
	r.Host = hostNow()
	if r.Failures == nil {
		r.Failures = []string{}
	}
	r.OK = len(r.Failures) == 0
}

func (r *Report) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// checkCommon adds the failures both modes share.
func (r *Report) checkCommon(maxLoss float64) {
	switch {
	case r.Clients.Joined == 0:
		r.fail("nobody joined")
	case r.Clients.Failed > 0:
		r.fail("%d of %d clients failed to join", r.Clients.Failed, r.Clients.Expected)
	}
	if r.Streams.Receiving < r.Streams.Expected {
		r.fail("%d of %d streams received nothing", r.Streams.Expected-r.Streams.Receiving, r.Streams.Expected)
	}
	if r.PacketsReceived == 0 {
		r.fail("no packets received")
	}
	if r.PacketsReceived+r.PacketsLost > 0 && r.LossRatio >= maxLoss {
		r.fail("loss %.2f%% is at or above -max-loss %.2f%%", 100*r.LossRatio, 100*maxLoss)
	}
}

// writeJSON writes the report to path.
func (r *Report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// printTable writes the human summary.
func (r *Report) printTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	title := fmt.Sprintf("loadtest %s: %s, %.1f s measured", r.Mode, r.URL, r.DurationS)
	if r.Interrupted {
		title += " (interrupted)"
	}
	fmt.Fprintln(tw, title)
	keys := make([]string, 0, len(r.Config))
	for k := range r.Config {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var cfg []string
	for _, k := range keys {
		cfg = append(cfg, fmt.Sprintf("%s=%v", k, r.Config[k]))
	}
	row("config", "%s", strings.Join(cfg, " "))
	row("clients", "%d joined of %d, %d failed", r.Clients.Joined, r.Clients.Expected, r.Clients.Failed)
	row("streams", "%d receiving of %d, %d stalled in the window", r.Streams.Receiving, r.Streams.Expected, r.Streams.Stalled)
	row("packets", "%d received, %d lost (%.3f%%), %d late, %d padding", r.PacketsReceived, r.PacketsLost, 100*r.LossRatio,
		r.LatePackets, r.PaddingPackets)
	if r.LatencyMS != nil {
		row("added latency", "%s ms", distString(*r.LatencyMS, "p50", "p95", "p99", "max"))
	}
	row("jitter", "%s ms (per stream)", distString(r.JitterMS, "p50", "p95", "max"))
	row("first frame", "%s ms", distString(r.FirstFrameMS, "p50", "p95", "max"))
	if r.JoinMS != nil {
		row("join", "%s ms", distString(*r.JoinMS, "p50", "p95", "max"))
	}
	row("bitrate", "%s kbit/s per subscriber", distString(scale(r.BitrateBPS, 1e-3), "mean", "min", "max"))
	row("frame rate", "%s fps per video stream", distString(r.FrameRate, "mean", "min", "p50"))
	if r.Freezes != nil {
		row("freezes", "%d, %.1f s in all, %.2f per minute per stream", r.Freezes.Count, r.Freezes.TotalS, r.Freezes.PerMinPerStream)
	}
	if s := r.Server; s != nil {
		line := fmt.Sprintf("%.2f CPU-s (%.0f%% of a core), RSS %.0f MiB, %d packets forwarded, %d resent for %d NACKs",
			s.CPUSeconds, s.CPUPercent, float64(s.RSSBytes)/(1<<20), s.PacketsSent, s.Retransmits, s.NACKs)
		if s.CPUSecondsPer1kPackets != nil {
			line += fmt.Sprintf(", %.4f CPU-s per 1k packets", *s.CPUSecondsPer1kPackets)
		}
		row("server", "%s [%s]", line, s.Source)
	} else {
		row("server", "not measured (no /metrics and no -server-pid)")
	}
	row("load tool", "%.2f CPU-s", r.LoadCPUSeconds)
	if h := r.Host; h.CPUs > 0 {
		pressure := ""
		if h.CPUPressure >= 0 {
			pressure = fmt.Sprintf(", tasks waited for a CPU %.0f%% of the last minute", h.CPUPressure)
		}
		row("host", "%d CPUs (%s), load average %.1f%s", h.CPUs, h.CPUModel, h.LoadAvg1, pressure)
	}
	if r.OK {
		row("result", "ok")
	} else {
		row("result", "FAILED: %s", strings.Join(r.Failures, "; "))
	}
	tw.Flush()
}

func scale(d Dist, f float64) Dist {
	return Dist{N: d.N, Mean: d.Mean * f, Min: d.Min * f, P50: d.P50 * f, P95: d.P95 * f, P99: d.P99 * f, Max: d.Max * f}
}

func distString(d Dist, fields ...string) string {
	if d.N == 0 {
		return "-"
	}
	var parts []string
	for _, f := range fields {
		v := map[string]float64{"mean": d.Mean, "min": d.Min, "p50": d.P50, "p95": d.P95, "p99": d.P99, "max": d.Max}[f]
		parts = append(parts, fmt.Sprintf("%s %s", f, num(v)))
	}
	return strings.Join(parts, ", ")
}

// num prints with about three significant digits.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// progress writes the live line: rewritten in place on a terminal, a plain
// line every few seconds otherwise (logs, CI).
type progress struct {
	w     io.Writer
	tty   bool
	last  time.Time
	width int
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(line string) {
	if p.tty {
		pad := max(p.width-len(line), 0)
		fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
		p.width = len(line)
		return
	}
	if time.Since(p.last) >= 5*time.Second {
		fmt.Fprintln(p.w, line)
		p.last = time.Now()
	}
}

// done ends the live line.
func (p *progress) done() {
	if p.tty && p.width > 0 {
		fmt.Fprintln(p.w)
		p.width = 0
	}
}
