package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/xml"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pion/interceptor"
)

func TestFitLine(t *testing.T) {
	ts := []float64{0, 1, 2, 3, 4}
	a, b, ok := fitLine(ts, []float64{3, 5, math.NaN(), 9, 11})
	if !ok || math.Abs(a-3) > 1e-9 || math.Abs(b-2) > 1e-9 {
		t.Errorf("fitLine = %v + %v t (%v), want 3 + 2 t", a, b, ok)
	}
	if _, _, ok := fitLine([]float64{1, 1}, []float64{1, 2}); ok {
		t.Error("a line through one time fitted")
	}
}

// Two minutes of samples, once a second, shaped like the soak's series.
func TestJudgeTrend(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ts := make([]float64, 120)
	for i := range ts {
		ts[i] = float64(i)
	}
	series := func(f func(t float64) float64) []float64 {
		y := make([]float64, len(ts))
		for i, t := range ts {
			y[i] = f(t)
		}
		return y
	}
	rel := growthLimit{rel: 0.25}
	for _, c := range []struct {
		name    string
		y       []float64
		lim     growthLimit
		grows   bool
		verdict string
	}{
		{"flat", series(func(float64) float64 { return 100 }), rel, false, "flat"},
		// A heap sampled anywhere in its GC cycle: between the live heap
		// and twice it.
		{"noisy flat", series(func(float64) float64 { return 100 + 100*rng.Float64() }), rel, false, "flat"},
		{"steadily growing", series(func(t float64) float64 { return 100 + 0.5*t + 20*rng.Float64() }), rel, true, "GROWS"},
		// 30% more at a third of the window, flat after: a cache that filled.
		{"a step that levels off", series(func(t float64) float64 { return 100 + 30*step(t, 40) }), rel, false, "rose, then levelled off"},
		// Too near the end to tell from the start of a climb.
		{"a late step", series(func(t float64) float64 { return 100 + 40*step(t, 100) }), rel, true, "GROWS"},
		// Goroutines: 5 more is a quarter of 20 but under the absolute floor.
		{"small and growing", series(func(t float64) float64 { return 20 + 5*t/120 }), goroutineLimit, false, "flat"},
		{"goroutines leaking", series(func(t float64) float64 { return 400 + t/2 }), goroutineLimit, true, "GROWS"},
	} {
		tr := judgeTrend(ts, c.y, c.lim)
		if tr.Grows != c.grows || tr.verdict() != c.verdict || !tr.Judged || tr.N != len(ts) {
			t.Errorf("%s: grows %v (%q), want %v (%q); %+v", c.name, tr.Grows, tr.verdict(), c.grows, c.verdict, tr)
		}
	}
	// Too few samples: slopes, but no verdict.
	tr := judgeTrend(ts[:10], series(func(t float64) float64 { return 100 + 10*t })[:10], rel)
	if tr.Judged || tr.Grows || math.Abs(tr.Slope-10) > 1e-9 || !strings.HasPrefix(tr.verdict(), "not judged") {
		t.Errorf("10 samples: %+v, %q", tr, tr.verdict())
	}
	// Start and end are the means of the first and last five samples.
	tr = judgeTrend(ts, series(func(t float64) float64 { return t }), rel)
	if tr.Start != 2 || tr.End != 117 || tr.Mean != 59.5 || math.Abs(tr.Growth-119) > 1e-9 {
		t.Errorf("a ramp: %+v", tr)
	}
}

func step(t, at float64) float64 {
	if t >= at {
		return 1
	}
	return 0
}

// The plot is well-formed XML with one polyline per series, missing
// values skipped.
func TestWritePlot(t *testing.T) {
	ts := []float64{0, 1, 2, 3}
	series := []plotSeries{
		{Name: "goroutines", Y: []float64{10, 11, 12, 13}, Fit: &[2]float64{10, 1}, FitFrom: 1, FitTo: 3, FitCaption: "a <caption> & more"},
		{Name: "heap MiB", Y: []float64{1, math.NaN(), 3, 4}},
		{Name: "flat & empty", Y: []float64{math.NaN(), math.NaN(), math.NaN(), math.NaN()}},
	}
	var b bytes.Buffer
	if err := writePlot(&b, "soak <test>", ts, series, []plotMark{{T: 2, Label: "warm-up ends"}}); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&b)
	var points []string
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "polyline" {
				for _, a := range se.Attr {
					if a.Name.Local == "points" {
						points = append(points, a.Value)
					}
				}
			}
		}
	}
	if root != "svg" || len(points) != len(series) {
		t.Fatalf("root %q, %d polylines; want svg and %d", root, len(points), len(series))
	}
	for i, want := range []int{4, 3, 0} {
		if n := len(strings.Fields(points[i])); n != want {
			t.Errorf("series %d: %d points (%q), want %d", i, n, points[i], want)
		}
	}
}

// Ten hours of samples still make a small polyline, spikes kept.
func TestEnvelope(t *testing.T) {
	y := make([]float64, 36000)
	for i := range y {
		y[i] = float64(i % 7)
	}
	y[12345], y[20000] = 100, math.NaN()
	idx := envelope(y)
	if len(idx) > maxPlotPoints || !slices.Contains(idx, 12345) || slices.Contains(idx, 20000) || !slices.IsSorted(idx) {
		t.Errorf("%d points, spike kept %v, NaN kept %v, sorted %v", len(idx), slices.Contains(idx, 12345),
			slices.Contains(idx, 20000), slices.IsSorted(idx))
	}
	if idx := envelope([]float64{1, math.NaN(), 3}); !slices.Equal(idx, []int{0, 2}) {
		t.Errorf("short series: %v, want every finite value", idx)
	}
}

func TestCSVSamples(t *testing.T) {
	var b bytes.Buffer
	w, err := newCSVSamples(&b, 2)
	if err != nil {
		t.Fatal(err)
	}
	s := soakSample{T: 1, Phase: phaseSoak, Goroutines: 400, HeapBytes: 1 << 20, RSSBytes: 2 << 20, OpenFDs: 80,
		CPUPercent: 12.3456, PacketsPerS: math.NaN(), ViewerFPS: []float64{30, math.NaN()}}
	if err := w.add(s); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(rows) != 2 || len(rows[0]) != len(csvColumns)+2 || len(rows[1]) != len(rows[0]) {
		t.Fatalf("rows %q, %v", rows, err)
	}
	got := map[string]string{}
	for i, k := range rows[0] {
		got[k] = rows[1][i]
	}
	for k, v := range map[string]string{"t_s": "1.0", "phase": "soak", "goroutines": "400", "heap_bytes": "1048576",
		"cpu_percent": "12.35", "packets_per_s": "", "viewer0_fps": "30", "viewer1_fps": ""} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// The loss interceptor drops about the share asked for, before the
// interceptors after it read the stream.
func TestLossInterceptor(t *testing.T) {
	var sent int
	src := interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		sent++
		return 1, a, nil
	})
	in, _ := lossFactory(0.05).NewInterceptor("")
	r := in.BindRemoteStream(&interceptor.StreamInfo{}, src)
	const reads = 20000
	for range reads {
		if _, _, err := r.Read(make([]byte, 10), nil); err != nil {
			t.Fatal(err)
		}
	}
	// 5% of ~21,000 is ~1,050 with a standard deviation of ~32.
	if dropped := sent - reads; dropped < 900 || dropped > 1250 {
		t.Errorf("dropped %d of %d, want about 5%%", dropped, sent)
	}
}

func TestSoakFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "1m", "-warmup", "1m"},
		{"-publishers", "0"},
		{"-loss", "1"},
		{"-url", "ftp://x/"},
		{"-idle-window", "0s"},
		{"extra"},
	} {
		var out bytes.Buffer
		if code := run(context.Background(), append([]string{"soak"}, args...), &out, &out); code != 2 {
			t.Errorf("loadtest soak %v: exit %d, want 2\n%s", args, code, out.String())
		}
	}
}

// A short soak against the real server: the churn happens, NACKs flow, the
// files are written, every viewer keeps decoding and the server goes back
// to idle. (Twenty seconds are too few to judge trends; the tests above
// judge those.)
func TestSoakShortRun(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s against the server")
	}
	// A killed viewer stays for the resume grace: a short one keeps the
	// wait for an empty room short.
	url, _ := startServer(t, "-resume-grace", "1s")
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "soak.csv")
	// The idle check reads the server's CPU through /metrics once a second,
	// and a -race server pays for that: idle, it used 0.4% of a core
	// unscraped and 1.2% scraped once a second here, and 1.0-3.4% over 2 s
	// in the soak's empty room, at e9b72e1 and after it alike, against 2%
	// allowed. Under -race the limit is 4%; over 4 s rather than 2, a
	// 10 ms CPU tick is a quarter of a percent, not half.
	maxIdle := "2"
	if raceEnabled {
		maxIdle = "4"
	}
	cfg, code := parseSoak([]string{"-url", url, "-wait-server", "5s", "-duration", "20s", "-warmup", "5s", "-publishers", "1", "-viewers", "2",
		"-bitrate", "300k", "-kill-interval", "4s", "-restart-interval", "8s", "-settle", "2s", "-idle-window", "4s",
		"-max-idle-cpu", maxIdle, "-csv", csvPath}, io.Discard)
	if cfg == nil {
		t.Fatalf("flags: exit %d", code)
	}
	res, err := runSoak(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res.print(&out)
	t.Logf("\n%s", out.String())
	if len(res.failures) > 0 {
		t.Errorf("failures: %q", res.failures)
	}
	if res.replaced < 3 || res.restarts < 1 {
		t.Errorf("%d viewers replaced, %d publisher restarts; want 3 and 1 at least", res.replaced, res.restarts)
	}
	var nacks, switches, fps float64
	soak := 0
	for _, s := range res.samples {
		if s.Phase == phaseSoak {
			soak++
			nacks += s.NACKsPerS
			switches += s.LayerSwitchesPerS
			for _, v := range s.ViewerFPS {
				if !math.IsNaN(v) { // NaN: the slot was being replaced
					fps = max(fps, v)
				}
			}
		}
	}
	if soak < 12 || !(nacks > 0) || !(switches > 0) || !(fps > 0) {
		t.Errorf("%d samples after warm-up, NACKs %v, layer switches %v, best viewer frames/s %v", soak, nacks, switches, fps)
	}
	if !(res.idleCPU >= 0 && res.idleCPU <= cfg.maxIdleCPU) || res.after.Goroutines > res.before.Goroutines+10 {
		t.Errorf("idle CPU %v%%, goroutines %v after and %v before", res.idleCPU, res.after.Goroutines, res.before.Goroutines)
	}
	rows, err := readCSV(csvPath)
	if err != nil || len(rows) != len(res.samples)+1 {
		t.Errorf("CSV: %d rows for %d samples, %v", len(rows), len(res.samples), err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "soak.svg"))
	if n := bytes.Count(svg, []byte("<polyline")); err != nil || n != len(soakSeriesList)+2 {
		t.Errorf("SVG: %d polylines, want %d; %v", n, len(soakSeriesList)+2, err)
	}
}

func readCSV(path string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return csv.NewReader(f).ReadAll()
}
