package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// rampResult is what a ramp measured: the table prints it, -json writes
// it. Field names are a stable interface for scripts.
type rampResult struct {
	Mode   string         `json:"mode"`
	URL    string         `json:"url"`
	Start  time.Time      `json:"start"`
	Config map[string]any `json:"config"`
	Limits struct {
		MaxLossRatio float64 `json:"max_loss_ratio"`
		MaxP99MS     float64 `json:"max_p99_ms"`
	} `json:"limits"`
	Steps []rampStep `json:"steps"`
	// Knee is the last step within the limits (nil when the first step
	// already broke one); KneeIndex is its index in Steps, or -1.
	Knee      *rampStep `json:"knee"`
	KneeIndex int       `json:"knee_index"`
	// Stopped says why the ramp ended.
	Stopped     string   `json:"stopped"`
	Interrupted bool     `json:"interrupted"`
	Host        Host     `json:"host"`
	Failures    []string `json:"failures"`
	OK          bool     `json:"ok"`

	maxSubscribers int
}

func newRampResult(cfg *rampConfig) *rampResult {
	r := &rampResult{Mode: "ramp", URL: cfg.url, Start: time.Now(), Steps: []rampStep{}, KneeIndex: -1,
		maxSubscribers: cfg.maxSubscribers,
		Config: map[string]any{
			"publishers": cfg.publishers, "bitrate": int(cfg.bitrate), "fps": cfg.fps, "simulcast": cfg.simulcast,
			"keyframe_interval_s": cfg.keyframeInterval.Seconds(), "drop": cfg.drop, "step": cfg.step,
			"step_duration_s": cfg.stepDuration.Seconds(), "settle_s": cfg.settle.Seconds(), "warmup_s": cfg.warmup.Seconds(),
			"confirm": cfg.confirm, "max_subscribers": cfg.maxSubscribers,
		}}
	r.Limits.MaxLossRatio, r.Limits.MaxP99MS = cfg.limits.MaxLoss, float64(cfg.limits.MaxP99)/1e6
	return r
}

func (r *rampResult) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// finish finds the knee, says why the ramp stopped and decides OK: a ramp
// that found no step within the limits, or could not go on, failed.
func (r *rampResult) finish() {
	r.Host = hostNow()
	r.KneeIndex = knee(r.Steps)
	r.Knee = nil
	if r.KneeIndex >= 0 {
		k := r.Steps[r.KneeIndex]
		r.Knee = &k
	}
	switch n := len(r.Steps); {
	case len(r.Failures) > 0:
		r.Stopped = "error: " + r.Failures[0]
	case r.Interrupted:
		r.Stopped = "interrupted"
	case n == 0:
		r.Stopped = "no step measured"
	case !r.Steps[n-1].within():
		r.Stopped = "step over the limits: " + strings.Join(r.Steps[n-1].Over, "; ")
	default:
		r.Stopped = fmt.Sprintf("reached -max-subscribers %d within the limits", r.maxSubscribers)
	}
	if r.Knee == nil && !r.Interrupted && len(r.Failures) == 0 {
		r.fail("no step within the limits")
	}
	if r.Failures == nil {
		r.Failures = []string{}
	}
	r.OK = len(r.Failures) == 0
}

// bitrate is the publishers' video bitrate as the flag takes it: 1.5M.
func (r *rampResult) bitrate() string {
	b, _ := r.Config["bitrate"].(int)
	return shortNum(float64(b))
}

// stepLine is one step, for the progress output.
func stepLine(i int, s *rampStep) string {
	verdict := "within the limits"
	if !s.within() {
		verdict = "OVER: " + strings.Join(s.Over, "; ")
	}
	return fmt.Sprintf("step %d: %d subscribers, %d streams, %.0f packets/s, server %.0f%% CPU, %s µs/packet, p50 %s p99 %s ms, loss %.2f%%, other work %.0f%% CPU: %s",
		i, s.Subscribers, s.Streams, s.PacketsPerS, s.CPUPercent, cpuPerPacket(s), num(s.LatencyP50MS), num(s.LatencyP99MS),
		100*s.LossRatio, s.OtherCPUPercent, verdict)
}

func cpuPerPacket(s *rampStep) string {
	if s.CPUMicrosPerPacket == nil {
		return "-"
	}
	return num(*s.CPUMicrosPerPacket)
}

// print writes the table of steps and the knee.
func (r *rampResult) print(w io.Writer) {
	fmt.Fprintf(w, "loadtest ramp: %s, %v publishers at %sbit/s (simulcast %v), +%v subscribers a step; limits: loss %.2f%%, p99 %s ms\n",
		r.URL, r.Config["publishers"], r.bitrate(), r.Config["simulcast"], r.Config["step"],
		100*r.Limits.MaxLossRatio, num(r.Limits.MaxP99MS))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\tsubscribers\tstreams\tpackets/s\tforwarded/s\tserver CPU %\tCPU µs/packet\tp50 ms\tp99 ms\tloss %\tload CPU %\tother CPU %\t")
	for i := range r.Steps {
		s := &r.Steps[i]
		mark := ""
		switch {
		case i == r.KneeIndex:
			mark = "  <- knee"
		case !s.within():
			mark = "  over: " + strings.Join(s.Over, "; ")
		}
		if s.FirstOver != nil {
			mark += " (measured twice; first over: " + strings.Join(s.FirstOver, "; ") + ")"
		}
		fmt.Fprintf(tw, "%d\t%d\t%d/%d\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%.3f\t%.0f\t%.0f\t%s\n", i+1, s.Subscribers, s.Streams,
			s.StreamsExpected, s.PacketsPerS, s.ForwardedPerS, s.CPUPercent, cpuPerPacket(s), num(s.LatencyP50MS),
			num(s.LatencyP99MS), 100*s.LossRatio, s.LoadCPUPercent, s.OtherCPUPercent, mark)
	}
	tw.Flush()
	if k := r.Knee; k != nil {
		fmt.Fprintf(w, "knee: %d subscribers, %d streams, %.0f packets/s, %s µs CPU per forwarded packet (server %.0f%% of a core), p99 %s ms, loss %.3f%%\n",
			k.Subscribers, k.Streams, k.PacketsPerS, cpuPerPacket(k), k.CPUPercent, num(k.LatencyP99MS), 100*k.LossRatio)
	} else {
		fmt.Fprintln(w, "knee: none (no step within the limits)")
	}
	fmt.Fprintln(w, "stopped:", r.Stopped)
	busiest := 0.0
	for _, s := range r.Steps {
		busiest = max(busiest, s.OtherCPUPercent)
	}
	// A quarter of a core of other work already moves the p99 by
	// milliseconds on two cores.
	if busiest >= 25 {
		fmt.Fprintf(w, "warning: other work on this host used up to %.0f%% of a core during the steps: the latency figures, and so the knee, are distorted\n", busiest)
	}
	if h := r.Host; h.CPUs > 0 {
		fmt.Fprintf(w, "host: %d CPUs (%s), load average %.1f\n", h.CPUs, h.CPUModel, h.LoadAvg1)
	}
	if r.OK {
		fmt.Fprintln(w, "result: ok")
	} else {
		fmt.Fprintln(w, "result: FAILED:", strings.Join(r.Failures, "; "))
	}
}

// write writes the JSON to path and the plot next to it, with .svg.
func (r *rampResult) write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(strings.TrimSuffix(path, filepath.Ext(path)) + ".svg")
	if err != nil {
		return err
	}
	if err := r.writePlot(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writePlot draws each step's figures over the subscriber count, the knee
// marked and the limits drawn as red lines.
func (r *rampResult) writePlot(w io.Writer) error {
	x := make([]float64, len(r.Steps))
	series := []plotSeries{{Name: "packets/s received"}, {Name: "added latency p99 (ms)"}, {Name: "loss (%)"},
		{Name: "server CPU (% of a core)"}, {Name: "server CPU µs per packet"}, {Name: "added latency p50 (ms)"}}
	for i := range series {
		series[i].Y = make([]float64, len(r.Steps))
	}
	for i, s := range r.Steps {
		x[i] = float64(s.Subscribers)
		cpu := math.NaN()
		if s.CPUMicrosPerPacket != nil {
			cpu = *s.CPUMicrosPerPacket
		}
		for j, v := range []float64{s.PacketsPerS, s.LatencyP99MS, 100 * s.LossRatio, s.CPUPercent, cpu, s.LatencyP50MS} {
			series[j].Y[i] = v
		}
	}
	x0, x1 := span(x)
	limit := func(ps *plotSeries, v float64, caption string) {
		ps.Fit, ps.FitFrom, ps.FitTo, ps.FitColor, ps.FitCaption = &[2]float64{v, 0}, x0, x1, "#d22", caption
	}
	limit(&series[1], r.Limits.MaxP99MS, fmt.Sprintf("limit %s ms", shortNum(r.Limits.MaxP99MS)))
	limit(&series[2], 100*r.Limits.MaxLossRatio, fmt.Sprintf("limit %.2f%%", 100*r.Limits.MaxLossRatio))
	var marks []plotMark
	if k := r.Knee; k != nil {
		marks = append(marks, plotMark{T: float64(k.Subscribers),
			Label: fmt.Sprintf("knee: %d subscribers, %.0f packets/s", k.Subscribers, k.PacketsPerS)})
	}
	title := fmt.Sprintf("Switchboard ramp %s: %v publishers at %sbit/s (simulcast %v), +%v subscribers a step",
		r.Start.Format("2006-01-02 15:04"), r.Config["publishers"], r.bitrate(), r.Config["simulcast"], r.Config["step"])
	return writePlotAxis(w, title, "subscribers", x, series, marks)
}
