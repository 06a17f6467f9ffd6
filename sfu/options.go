package sfu

import "time"

// option is one way to forward a video: a spatial layer with temporal
// layers up to temporal, and what it costs.
type option struct {
	layer    int
	temporal uint8
	bitrate  int
}

// options lists a track's options in ascending cost for a subscriber whose
// tile is maxWidth wide. Frame rate comes before resolution: the lowest
// layer is offered at 1, 2 and 3 temporal layers, higher layers only at full
// frame rate, so a weak link gets a small picture that moves smoothly.
func (t *Track) options(now time.Time, maxWidth int) []option {
	rates := t.rates(now)
	var opts []option
	for i := range maxLayers {
		l := t.layer(i)
		if l == nil {
			continue
		}
		if len(opts) > 0 && maxWidth > 0 && layerWidth(l, i) > maxWidth*5/4 && opts[len(opts)-1].layer >= 0 {
			break // larger than the tile: the previous layer is enough
		}
		if len(opts) == 0 && l.temporal.Load() {
			for tid := range uint8(unlayered) {
				opts = append(opts, option{layer: i, temporal: tid, bitrate: rates.cost(i, int(tid))})
			}
			continue
		}
		opts = append(opts, option{layer: i, temporal: allTemporal, bitrate: rates.cost(i, allTemporal)})
	}
	return opts
}

// layerWidth is a layer's width from its last keyframe, or what the web
// client's encodings make of a 720p camera.
func layerWidth(l *layer, i int) int {
	if l != nil {
		if w := l.width.Load(); w > 0 {
			return int(w)
		}
	}
	return 1280 >> (maxLayers - 1 - i)
}

// layerWidths are layerWidth of each of t's layers, seen or not.
func (t *Track) layerWidths() [maxLayers]int {
	var w [maxLayers]int
	for i := range w {
		w[i] = layerWidth(t.layer(i), i)
	}
	return w
}

// usefulLayers is how many layers of a track a tile maxWidth wide can use,
// given the layers' widths, counting layers not seen yet: the publisher may
// not have sent them, and dynacast must not switch off a layer before
// anyone could ask for it. A track without simulcast has one.
func usefulLayers(simulcast bool, widths [maxLayers]int, maxWidth int) int {
	if !simulcast {
		return 1
	}
	n := 1
	for i := 1; i < maxLayers; i++ {
		if maxWidth > 0 && widths[i] > maxWidth*5/4 {
			break
		}
		n = i + 1
	}
	return n
}

// layerRates are measured bitrates per layer and temporal layer.
type layerRates [maxLayers][temporalBuckets]int

// cost of forwarding layer i up to temporal layer tid (allTemporal: all).
func (r *layerRates) cost(i, tid int) int {
	total := r[i][unlayered]
	for t := 0; t <= min(tid, unlayered-1); t++ {
		total += r[i][t]
	}
	if total == 0 {
		return nominalBitrate[i]
	}
	return total
}

// rates measures each layer's bitrate over about rateWindow, once for all
// subscribers that ask within it. A layer that stopped (dynacast, or the
// publisher's own congestion control) costs its nominal rate.
func (t *Track) rates(now time.Time) layerRates {
	t.mu.Lock()
	defer t.mu.Unlock()
	elapsed := now.Sub(t.rateAt)
	if elapsed < rateWindow {
		return t.rateCache
	}
	for i := range maxLayers {
		l := t.layers[i].Load()
		if l == nil {
			continue
		}
		live := now.UnixNano()-l.lastPacket.Load() < int64(liveTimeout)
		for tid := range temporalBuckets {
			b := l.bytes[tid].Load()
			rate := int(float64(b-t.rateBytes[i][tid]) * 8 / elapsed.Seconds())
			t.rateBytes[i][tid] = b
			if !live || t.rateAt.IsZero() {
				rate = 0
			}
			t.rateCache[i][tid] = rate
		}
	}
	t.rateAt = now
	return t.rateCache
}
