package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"text/tabwriter"
	"time"
)

// soakResult is what a soak measured and what it found wrong.
type soakResult struct {
	cfg              *soakConfig
	before           soakSample // the server before anyone joined
	samples          []soakSample
	leftAt           float64 // seconds: when everyone left
	emptyAt          float64 // and when the server's room was empty
	replaced         int
	restarts         int
	scrapeErrors     int
	serverGone       bool // /metrics stopped answering: the run ended early
	csvErr           error
	interrupted      bool
	csvPath, svgPath string

	trends []trend // one per soakSeriesList entry, over the judged window
	// idleCPU is the server's CPU in percent of a core over -idle-window
	// after -settle with the room empty; NaN when not measured. after is
	// the last sample then.
	idleCPU  float64
	after    soakSample
	failures []string
}

// soakSeries are the series the summary and the plot show; those with a
// limit are judged for growth.
type soakSeries struct {
	name  string
	unit  float64 // divides the value for display
	value func(*soakSample) float64
	limit *growthLimit
}

var soakSeriesList = []soakSeries{
	{"goroutines", 1, func(s *soakSample) float64 { return s.Goroutines }, &goroutineLimit},
	{"heap MiB", 1 << 20, func(s *soakSample) float64 { return s.HeapBytes }, &heapLimit},
	{"RSS MiB", 1 << 20, func(s *soakSample) float64 { return s.RSSBytes }, &rssLimit},
	{"open fds", 1, func(s *soakSample) float64 { return s.OpenFDs }, &fdLimit},
	{"CPU % of a core", 1, func(s *soakSample) float64 { return s.CPUPercent }, nil},
	{"packets/s forwarded", 1, func(s *soakSample) float64 { return s.PacketsPerS }, nil},
	{"NACKs/s received", 1, func(s *soakSample) float64 { return s.NACKsPerS }, nil},
	{"retransmits/s", 1, func(s *soakSample) float64 { return s.RetransmitsPerS }, nil},
	{"layer switches/s", 1, func(s *soakSample) float64 { return s.LayerSwitchesPerS }, nil},
	{"participants", 1, func(s *soakSample) float64 { return s.Participants }, nil},
}

// Once the room is empty, goroutines and descriptors should be back to what
// the server had before the call: allow 10% or a few more, for the HTTP
// connection of the scrapes and timers of the last connections closing.
var (
	goroutinesBackLimit = growthLimit{rel: 0.10, abs: 10}
	fdsBackLimit        = growthLimit{rel: 0.10, abs: 3}
)

// maxScrapeErrors is the share of /metrics reads that may fail (time out
// under load) before the run counts the server as not answering.
const maxScrapeErrors = 0.1

func (r *soakResult) fail(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// window returns the sample times and values of one series after warm-up.
func (r *soakResult) window(value func(*soakSample) float64) (t, y []float64) {
	for i := range r.samples {
		if s := &r.samples[i]; s.Phase == phaseSoak {
			t, y = append(t, s.T), append(y, value(s))
		}
	}
	return t, y
}

// judge fits the trends and checks the empty server.
func (r *soakResult) judge() {
	r.trends = make([]trend, len(soakSeriesList))
	for i, ser := range soakSeriesList {
		t, y := r.window(ser.value)
		if ser.limit == nil {
			r.trends[i] = judgeTrend(t, y, growthLimit{abs: math.Inf(1)})
			continue
		}
		tr := judgeTrend(t, y, *ser.limit)
		r.trends[i] = tr
		if tr.Grows {
			r.fail("%s keep growing after the warm-up: the fitted line rises %s over %.0f s (%+.0f%% of the mean), and %s at its second half's pace (limit %s)",
				ser.name, shortNum(tr.Growth/ser.unit), tr.To-tr.From, 100*tr.Growth/tr.Mean,
				shortNum(tr.LateGrowth/ser.unit), shortNum(tr.Limit/ser.unit))
		}
	}
	if n := len(r.samples); !r.serverGone && float64(r.scrapeErrors) > maxScrapeErrors*float64(n) {
		r.fail("the server's /metrics failed (or took over 900 ms) %d times in %d", r.scrapeErrors, n)
	}
	r.idleCPU = math.NaN()
	if r.interrupted || r.serverGone {
		return
	}
	var first *soakSample
	for i := range r.samples {
		s := &r.samples[i]
		if s.Phase != phaseEmpty {
			continue
		}
		if first == nil && s.T >= r.emptyAt+r.cfg.settle.Seconds() {
			first = s
		}
		r.after = *s
	}
	if first == nil || r.after.T-first.T < r.cfg.idleWindow.Seconds()-0.5 {
		r.fail("the server could not be read after the room emptied")
		return
	}
	r.idleCPU = 100 * (r.after.CPUSeconds - first.CPUSeconds) / (r.after.T - first.T)
	if !(r.idleCPU <= r.cfg.maxIdleCPU) {
		r.fail("the server used %.1f%% of a core %v after the room emptied (limit %.1f%%)", r.idleCPU, r.cfg.settle, r.cfg.maxIdleCPU)
	}
	if lim := r.before.Goroutines + goroutinesBackLimit.limit(r.before.Goroutines); !(r.after.Goroutines <= lim) {
		r.fail("the server kept %.0f goroutines after the room emptied; it had %.0f before the call (limit %.0f)",
			r.after.Goroutines, r.before.Goroutines, lim)
	}
	if lim := r.before.OpenFDs + fdsBackLimit.limit(r.before.OpenFDs); !(r.after.OpenFDs <= lim) && !math.IsNaN(r.before.OpenFDs) {
		r.fail("the server kept %.0f open fds after the room emptied; it had %.0f before the call (limit %.0f)",
			r.after.OpenFDs, r.before.OpenFDs, lim)
	}
}

// viewerFPS is the lowest and the mean of the viewers' per-second frame
// rates after warm-up.
func (r *soakResult) viewerFPS() (lowest, avg float64) {
	var all []float64
	for _, s := range r.samples {
		if s.Phase == phaseSoak {
			for _, v := range s.ViewerFPS {
				if !math.IsNaN(v) {
					all = append(all, v)
				}
			}
		}
	}
	lowest, _ = span(all)
	return lowest, mean(all)
}

// print writes the summary.
func (r *soakResult) print(w io.Writer) {
	c := r.cfg
	fmt.Fprintf(w, "soak: %d publishers (simulcast, %s full layer), %d viewers in %s for %v, warm-up %v; %d viewers killed and replaced, %d publisher restarts, sizes changed every %v, %.0f%% loss at the viewers\n",
		c.publishers, shortNum(float64(c.bitrate))+"bit/s", c.viewers, c.room(0), c.duration, c.warmup,
		r.replaced, r.restarts, c.layerEvery, 100*c.loss)
	if r.interrupted {
		fmt.Fprintln(w, "interrupted: the trends cover what was measured; the idle check was skipped")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "after warm-up\tstart\tend\tmean\tslope/min\tgrowth\tlimit\tverdict\t")
	for i, ser := range soakSeriesList {
		tr := r.trends[i]
		u := ser.unit
		limit, verdict := "-", "-"
		if ser.limit != nil {
			limit, verdict = shortNum(tr.Limit/u), tr.verdict()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%+.3g\t%+.3g\t%s\t%s\t\n", ser.name, shortNum(tr.Start/u), shortNum(tr.End/u),
			shortNum(tr.Mean/u), 60*tr.Slope/u, tr.Growth/u, limit, verdict)
	}
	tw.Flush()
	lowest, avg := r.viewerFPS()
	fmt.Fprintf(w, "viewer frames/s after warm-up (all videos of a viewer, some paused): mean %.1f, lowest second %.0f\n", avg, lowest)
	if !math.IsNaN(r.idleCPU) {
		fmt.Fprintf(w, "room empty for %v: server CPU %.1f%% of a core over %v (limit %.1f%%); goroutines %.0f (%.0f before the call); open fds %.0f (%.0f before)\n",
			c.settle, r.idleCPU, c.idleWindow, c.maxIdleCPU, r.after.Goroutines, r.before.Goroutines, r.after.OpenFDs, r.before.OpenFDs)
	}
	if r.scrapeErrors > 0 {
		fmt.Fprintf(w, "/metrics failed to answer %d times\n", r.scrapeErrors)
	}
	fmt.Fprintf(w, "samples: %s  plot: %s\n", r.csvPath, r.svgPath)
	if len(r.failures) == 0 {
		fmt.Fprintln(w, "ok")
		return
	}
	fmt.Fprintln(w, "FAILED:")
	for _, f := range r.failures {
		fmt.Fprintln(w, "  -", f)
	}
}

// writePlot draws every series over the whole run, with the fitted lines
// of the judged ones (red when they grow), next to the CSV.
func (r *soakResult) writePlot() error {
	t := make([]float64, len(r.samples))
	for i, s := range r.samples {
		t[i] = s.T
	}
	var series []plotSeries
	for i, ser := range soakSeriesList {
		ps := plotSeries{Name: ser.name, Y: make([]float64, len(r.samples))}
		for j := range r.samples {
			ps.Y[j] = ser.value(&r.samples[j]) / ser.unit
		}
		if tr := r.trends[i]; ser.limit != nil && tr.N >= 2 {
			ps.Fit = &[2]float64{tr.Intercept / ser.unit, tr.Slope / ser.unit}
			ps.FitFrom, ps.FitTo = tr.From, tr.To
			ps.FitColor, ps.FitCaption = "#2a2", fmt.Sprintf("%+.1f%% over the window: %s", 100*tr.Growth/tr.Mean, tr.verdict())
			if tr.Grows {
				ps.FitColor = "#d22"
			}
		}
		series = append(series, ps)
	}
	for v := range r.cfg.viewers {
		ps := plotSeries{Name: fmt.Sprintf("viewer %d frames/s", v), Y: make([]float64, len(r.samples))}
		for j, s := range r.samples {
			ps.Y[j] = math.NaN()
			if v < len(s.ViewerFPS) {
				ps.Y[j] = s.ViewerFPS[v]
			}
		}
		series = append(series, ps)
	}
	f, err := os.Create(r.svgPath)
	if err != nil {
		return err
	}
	title := fmt.Sprintf("Switchboard soak %s: %d publishers, %d viewers, %v (warm-up %v)",
		time.Now().Format("2006-01-02 15:04"), r.cfg.publishers, r.cfg.viewers, r.cfg.duration, r.cfg.warmup)
	marks := []plotMark{{T: r.cfg.warmup.Seconds(), Label: "warm-up ends"}, {T: r.leftAt, Label: "everyone leaves"},
		{T: r.emptyAt, Label: "room empty"}}
	if err := writePlot(f, title, t, series, marks); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
