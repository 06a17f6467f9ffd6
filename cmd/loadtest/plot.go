package main

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// plotSeries is one chart of the soak plot: a value per sample (NaN: none
// then) and, for a judged series, the fitted trend line to draw over it.
type plotSeries struct {
	Name string
	Y    []float64
	// Fit, when set, is the line a + b*t drawn from FitFrom to FitTo.
	Fit                  *[2]float64
	FitFrom, FitTo       float64
	FitColor, FitCaption string
}

// plotMark is a moment marked on every chart (the warm-up's end, the room
// emptying).
type plotMark struct {
	T     float64
	Label string
}

const (
	plotCols   = 3
	plotW      = 340 // one chart, with its margins
	plotH      = 160
	plotLeft   = 58 // room for the y labels
	plotRight  = 12
	plotTop    = 22 // room for the title
	plotBottom = 22 // room for the x labels
	plotHeader = 30
)

// writePlot draws one small line chart per series over the shared time
// axis t (seconds), in a grid, as a self-contained SVG: one polyline per
// series, so a browser, an image viewer or an XML parser can read it.
func writePlot(w io.Writer, title string, t []float64, series []plotSeries, marks []plotMark) error {
	return writePlotAxis(w, title, "s", t, series, marks)
}

// writePlotAxis is writePlot over a shared axis in unit (the ramp's is
// subscribers, not seconds).
func writePlotAxis(w io.Writer, title, unit string, t []float64, series []plotSeries, marks []plotMark) error {
	bw := bufio.NewWriter(w)
	rows := (len(series) + plotCols - 1) / plotCols
	width, height := plotCols*plotW, plotHeader+rows*plotH
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		width, height, width, height)
	fmt.Fprintf(bw, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(bw, `<text x="8" y="20" font-size="14">%s</text>`+"\n", esc(title))
	t0, t1 := span(t)
	for i, s := range series {
		x0 := float64(i%plotCols*plotW + plotLeft)
		y0 := float64(plotHeader + i/plotCols*plotH + plotTop)
		c := chart{x0: x0, y0: y0, w: plotW - plotLeft - plotRight, h: plotH - plotTop - plotBottom, t0: t0, t1: t1, unit: unit}
		c.v0, c.v1 = span(s.Y)
		if s.Fit != nil { // keep the trend line inside the chart
			for _, at := range []float64{s.FitFrom, s.FitTo} {
				v := s.Fit[0] + s.Fit[1]*at
				c.v0, c.v1 = min(c.v0, v), max(c.v1, v)
			}
		}
		c.v0 = min(c.v0, 0) // from zero, so that a small change looks small
		if c.v1 <= c.v0 {
			c.v1 = c.v0 + 1
		}
		c.draw(bw, s, t, marks)
	}
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

// chart maps one series' values to its box.
type chart struct {
	x0, y0, w, h   float64
	t0, t1, v0, v1 float64
	unit           string
}

func (c chart) x(t float64) float64 { return c.x0 + (t-c.t0)/(c.t1-c.t0)*c.w }
func (c chart) y(v float64) float64 { return c.y0 + c.h - (v-c.v0)/(c.v1-c.v0)*c.h }

func (c chart) draw(w io.Writer, s plotSeries, t []float64, marks []plotMark) {
	fmt.Fprintf(w, `<g><text x="%.0f" y="%.0f" font-weight="bold">%s</text>`+"\n", c.x0, c.y0-8, esc(s.Name))
	fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#ccc"/>`+"\n", c.x0, c.y0, c.w, c.h)
	for _, v := range []float64{c.v0, c.v1} {
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", c.x0-4, c.y(v)+4, esc(shortNum(v)))
	}
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f">%.0f %s</text>`+"\n", c.x0, c.y0+c.h+14, c.t0, esc(c.unit))
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end">%.0f %s</text>`+"\n", c.x0+c.w, c.y0+c.h+14, c.t1, esc(c.unit))
	for i, m := range marks {
		if m.T < c.t0 || m.T > c.t1 {
			continue
		}
		x := c.x(m.T)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="3,3"/>`+"\n", x, c.y0, x, c.y0+c.h)
		// One line of labels each, so that marks close together stay
		// legible; near the right edge, to the left of the mark.
		lx, anchor := x+2, "start"
		if x > c.x0+0.7*c.w {
			lx, anchor = x-2, "end"
		}
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" fill="#999" font-size="9" text-anchor="%s">%s</text>`+"\n",
			lx, c.y0+10+10*float64(i), anchor, esc(m.Label))
	}
	var pts strings.Builder
	for _, i := range envelope(s.Y) {
		if i < len(t) {
			fmt.Fprintf(&pts, "%.1f,%.1f ", c.x(t[i]), c.y(s.Y[i]))
		}
	}
	fmt.Fprintf(w, `<polyline fill="none" stroke="#1f6fb4" stroke-width="1.2" points="%s"/>`+"\n", strings.TrimSpace(pts.String()))
	if s.Fit != nil {
		color := s.FitColor
		if color == "" {
			color = "#2a2"
		}
		a, b := s.Fit[0], s.Fit[1]
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5" stroke-dasharray="6,3"/>`+"\n",
			c.x(s.FitFrom), c.y(a+b*s.FitFrom), c.x(s.FitTo), c.y(a+b*s.FitTo), color)
		if s.FitCaption != "" {
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end" fill="%s">%s</text>`+"\n", c.x0+c.w, c.y0-8, color, esc(s.FitCaption))
		}
	}
	fmt.Fprintln(w, "</g>")
}

// maxPlotPoints bounds a polyline: a chart is 270 pixels wide, and a soak
// of hours has tens of thousands of samples.
const maxPlotPoints = 1000

// envelope returns the indexes of the finite values of y to draw: all of
// them when there are few, else the lowest and the highest of each run of
// samples in time order, so that spikes survive the thinning.
func envelope(y []float64) []int {
	per := max(1, (len(y)+maxPlotPoints/2-1)/(maxPlotPoints/2)) // samples per pair of points
	var out []int
	for from := 0; from < len(y); from += per {
		lo, hi := -1, -1
		for i := from; i < min(from+per, len(y)); i++ {
			if math.IsNaN(y[i]) || math.IsInf(y[i], 0) {
				continue
			}
			if lo < 0 || y[i] < y[lo] {
				lo = i
			}
			if hi < 0 || y[i] > y[hi] {
				hi = i
			}
		}
		switch {
		case lo < 0:
		case lo == hi:
			out = append(out, lo)
		default:
			out = append(out, min(lo, hi), max(lo, hi))
		}
	}
	return out
}

// span is the smallest and largest finite value (0, 1 when there is none).
func span(v []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			lo, hi = min(lo, x), max(hi, x)
		}
	}
	if lo > hi {
		return 0, 1
	}
	if lo == hi {
		hi = lo + 1
	}
	return lo, hi
}

// shortNum writes an axis label: 1.2k, 35M and so on.
func shortNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return fmt.Sprintf("%.3gG", v/1e9)
	case a >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case a >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
