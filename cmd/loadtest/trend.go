package main

import (
	"fmt"
	"math"
)

// A leak shows as a series that keeps growing while the load stays the
// same. The soak fits a least-squares line to each judged series after the
// warm-up and calls it growing when the line rises by more than a limit
// over the window, both over the whole window and over its second half:
// a series that rose once and then levelled off (a cache that filled, the
// heap settling at a new size) is not a leak, while one still rising at the
// end is. One-off leaks of goroutines or descriptors are caught instead by
// the check that they return to the baseline once the room is empty.

// growthLimit is how much a series may grow over the judged window: more
// than rel of its mean and more than abs (in the series' unit) both.
type growthLimit struct {
	rel, abs float64
}

// limit is the growth allowed for a series whose mean is mean.
func (l growthLimit) limit(mean float64) float64 { return max(l.rel*math.Abs(mean), l.abs) }

// The limits, from `make soak` on a healthy server (3 simulcast publishers
// and 6 viewers with the default churn: 10 participants, one a killed
// viewer in its resume grace), a sample a second over 90 s after warm-up:
//   - goroutines: about 490, some 50 per participant (two PeerConnections),
//     dipping by one participant's worth while a viewer is replaced; the
//     fitted growth moved by about 1%. 10% and 20 is one participant more at
//     the end than at the start; a leak of one goroutine per replaced viewer
//     passes it within the 9 judged minutes of a default run.
//   - heap: 16-33 MiB around 24 as the GC runs, a spread of 18% of the mean
//     per sample, which leaves the fitted growth a standard error of 6.5% of
//     the mean over 90 samples (2.7% over 540). 25% is four of those in a
//     2-minute run; 8 MiB keeps a small heap's swings from counting.
//   - RSS: it climbed from 35 to 55 MiB during the warm-up and then stayed
//     within 2%; it follows the heap's peaks and gives pages back slowly,
//     so 25% and 16 MiB, as for the heap.
//   - open fds: about 80, some 7 per participant, dipping while a viewer is
//     replaced. 10% and 5 is about one participant; a descriptor leaked per
//     replaced viewer passes it within 2 minutes.
var (
	goroutineLimit = growthLimit{rel: 0.10, abs: 20}
	fdLimit        = growthLimit{rel: 0.10, abs: 5}
	heapLimit      = growthLimit{rel: 0.25, abs: 8 << 20}
	rssLimit       = growthLimit{rel: 0.25, abs: 16 << 20}
)

// minTrendSamples is the fewest samples (seconds) a verdict is given on:
// with fewer, the heap's GC swings alone give the fitted growth a standard
// error over a tenth of the mean, so a short run reports its slopes
// without judging them.
const minTrendSamples = 30

// trend is a fitted line over the judged window and its verdict.
type trend struct {
	N int
	// Start and End are the means of the first and last five samples.
	Start, End, Mean float64
	// Slope is per second; Growth is what the line rises over the window
	// (Slope times its length), LateGrowth the same for a line fitted to
	// the second half only, scaled to the whole window.
	Slope, Growth, LateGrowth float64
	Limit                     float64
	// The fitted line is Intercept + Slope*t, over From to To (seconds).
	Intercept, From, To float64
	// Judged is false when there were too few samples for a verdict.
	Judged, Grows bool
}

// fitLine returns the least-squares line y = a + b*t through the points
// whose y is not NaN; ok is false with fewer than two distinct times.
func fitLine(t, y []float64) (a, b float64, ok bool) {
	var n, st, sy float64
	for i := range t {
		if !math.IsNaN(y[i]) {
			n, st, sy = n+1, st+t[i], sy+y[i]
		}
	}
	if n < 2 {
		return 0, 0, false
	}
	mt, my := st/n, sy/n
	var stt, sty float64
	for i := range t {
		if !math.IsNaN(y[i]) {
			stt += (t[i] - mt) * (t[i] - mt)
			sty += (t[i] - mt) * (y[i] - my)
		}
	}
	if stt == 0 {
		return my, 0, false
	}
	b = sty / stt
	return my - b*mt, b, true
}

// judgeTrend fits lines to y over t (seconds; NaN values are skipped) and
// says whether the series grows beyond lim.
func judgeTrend(t, y []float64, lim growthLimit) trend {
	var tt, yy []float64
	for i := range t {
		if !math.IsNaN(y[i]) {
			tt, yy = append(tt, t[i]), append(yy, y[i])
		}
	}
	tr := trend{N: len(yy)}
	if tr.N == 0 {
		return tr
	}
	k := min(5, tr.N)
	tr.Start, tr.End = mean(yy[:k]), mean(yy[tr.N-k:])
	tr.Mean = mean(yy)
	tr.Limit = lim.limit(tr.Mean)
	a, b, ok := fitLine(tt, yy)
	if !ok {
		return tr
	}
	tr.From, tr.To = tt[0], tt[tr.N-1]
	span := tr.To - tr.From
	tr.Intercept, tr.Slope, tr.Growth = a, b, b*span
	half := tr.N / 2
	if _, lb, ok := fitLine(tt[half:], yy[half:]); ok {
		tr.LateGrowth = lb * span
	}
	tr.Judged = tr.N >= minTrendSamples
	tr.Grows = tr.Judged && tr.Growth > tr.Limit && tr.LateGrowth > tr.Limit
	return tr
}

// verdict is the trend in words, for the summary and the failure message.
func (tr trend) verdict() string {
	switch {
	case tr.N < 2:
		return "no samples"
	case !tr.Judged:
		return fmt.Sprintf("not judged (%d samples, want %d)", tr.N, minTrendSamples)
	case tr.Grows:
		return "GROWS"
	case tr.Growth > tr.Limit:
		return "rose, then levelled off"
	}
	return "flat"
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
