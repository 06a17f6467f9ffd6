package sfu

import (
	"fmt"
	"slices"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// The stream allocator: every allocationInterval each subscriber shares its
// bandwidth estimate out across the videos it receives. Audio always goes
// through; screen shares are served before cameras; each video climbs
// options (layer and frame rate) one step at a time while they fit, never
// past its tile's size; a video for which nothing fits is paused. Upgrades
// need the headroom to last upgradeHold and are probed for; downgrades
// happen at once.
const (
	allocationInterval = 300 * time.Millisecond
	upgradeHold        = 2 * time.Second
	maxUpgradeHold     = 16 * time.Second
	flapWindow         = 10 * time.Second // a downgrade this soon after an upgrade is a flap
	upgradeHeadroom    = 0.9              // upgrades must fit in this share of the estimate
	// keepTolerance lets a video keep its option while it costs up to this
	// much more than the estimate. Estimates and layer costs are measured
	// over different windows (and audio is counted at a nominal rate), so
	// an option that just fits reads now over, now under its budget; the
	// band between this and upgradeHeadroom keeps it from flapping.
	keepTolerance = 1.1
	audioBitrate  = 50_000
	probeDuration = 1500 * time.Millisecond
	probeInterval = 20 * time.Millisecond
	probeStep     = 2 // a probe tries at most this multiple of the known rate
	// probeMargin: a probe asks for this much more than the upgrade costs
	// now, since layer rates move (a keyframe, the encoder's own control)
	// while it runs, and a probe that confirms just too little is wasted.
	probeMargin  = 1.15
	rateWindow   = 2 * time.Second // two seconds smooth a keyframe's burst
	liveTimeout  = 1500 * time.Millisecond
	dynacastHold = 3 * time.Second // a layer nobody needs is switched off after this
)

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
			for tid := range uint8(3) {
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

// usefulLayers is how many layers of t a tile maxWidth wide can use,
// counting layers not seen yet: the publisher may not have sent them, and
// dynacast must not switch off a layer before anyone could ask for it.
func (t *Track) usefulLayers(maxWidth int) int {
	if len(t.Info().Layers) == 0 {
		return 1 // not simulcast
	}
	n := 1
	for i := 1; i < maxLayers; i++ {
		if maxWidth > 0 && layerWidth(t.layer(i), i) > maxWidth*5/4 {
			break
		}
		n = i + 1
	}
	return n
}

// layerRates are measured bitrates per layer and temporal layer.
type layerRates [maxLayers][4]int

// cost of forwarding layer i up to temporal layer tid (allTemporal: all).
func (r *layerRates) cost(i, tid int) int {
	total := r[i][3]
	for t := 0; t <= min(tid, 2); t++ {
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
		for tid := range 4 {
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

// allocate shares budget among videos (in priority order) and returns the
// option index each gets, -1 for paused.
func allocate(budget int, opts [][]option, screen []bool) []int {
	choice := make([]int, len(opts))
	for i := range choice {
		choice[i] = -1
	}
	// Screens first, then cameras: each group gets its lowest options, then
	// climbs one step per round so the group's videos share fairly.
	for _, wantScreen := range []bool{true, false} {
		for i := range opts {
			if screen[i] == wantScreen && len(opts[i]) > 0 && opts[i][0].bitrate <= budget {
				choice[i] = 0
				budget -= opts[i][0].bitrate
			}
		}
		for changed := true; changed; {
			changed = false
			for i := range opts {
				c := choice[i]
				if screen[i] != wantScreen || c < 0 || c+1 >= len(opts[i]) {
					continue
				}
				if delta := opts[i][c+1].bitrate - opts[i][c].bitrate; delta <= budget {
					choice[i]++
					budget -= delta
					changed = true
				}
			}
		}
	}
	return choice
}

// allocation is the allocator's state for one video down-track.
type allocation struct {
	option  int // index in the options last computed, -1 paused
	upSince time.Time
	// hold is how long an upgrade must stay possible before it is made. It
	// doubles when an upgrade is soon undone, so a link at the edge of a
	// layer settles instead of flapping, and relaxes after a calm spell.
	hold         time.Duration
	lastUp       time.Time
	lastDown     time.Time
	sentPaused   bool
	sentLayer    string
	notifiedOnce bool
}

// allocateLoop runs the allocator and, for this participant's own tracks,
// dynacast, until the participant leaves.
func (p *Participant) allocateLoop() {
	defer p.wg.Done()
	tick := time.NewTicker(allocationInterval)
	defer tick.Stop()
	probeTick := time.NewTicker(probeInterval)
	probeTick.Stop()
	state := map[*DownTrack]*allocation{}
	var probe prober
	probed := false // a probe has just confirmed a higher rate
	dynacast := map[*Track]*dynacastState{}
	for {
		select {
		case <-p.done:
			return
		case <-probeTick.C:
			switch probe.tick(time.Now(), p.bwe) {
			case probeRunning:
				continue
			case probeSucceeded:
				p.log.Debug("probe succeeded", zap.Int("target", probe.target), zap.Int("delivered", p.bwe.Delivered()))
				probed = true // act on it now
			case probeFailed:
				p.log.Debug("probe failed", zap.Int("target", probe.target), zap.Int("delivered", p.bwe.Delivered()),
					zap.Any("bwe", p.bwe.Stats()), zap.Duration("retryIn", time.Until(probe.next)))
			}
			probeTick.Stop()
			if !probed {
				continue
			}
		case <-p.allocNeeded:
		case <-tick.C:
		}
		now := time.Now()
		keepEst, upEst := probe.estimates(p.bwe)
		want := p.reallocate(now, state, keepEst, upEst, probed)
		probed = false
		if want.d != nil && !probe.on && now.After(probe.next) {
			probe.start(now, want.d.writePadding, want.target, want.rate)
			probeTick.Reset(probeInterval)
			p.log.Debug("probing", zap.Int("estimate", p.bwe.TargetBitrate()), zap.Int("target", want.target),
				zap.Int("padding", want.rate))
		}
		p.dynacast(now, dynacast)
	}
}

// probeWanted says which down-track to pad and how much, when a video is
// held back by the estimate.
type probeWanted struct {
	d      *DownTrack
	need   int // what the next option costs more
	rate   int // padding, bit/s
	target int // the estimate that would allow the upgrade
}

// reallocate runs one round of the allocator. probed says upEstimate was
// just confirmed by a probe, which held the rate for longer than any
// upgrade hold: upgrades it allows are made at once.
func (p *Participant) reallocate(now time.Time, state map[*DownTrack]*allocation, estimate, upEstimate int, probed bool) probeWanted {
	p.mu.Lock()
	var videos []*DownTrack
	audio := 0
	for d := range p.downs {
		if d.src.info.Kind == webrtc.RTPCodecTypeVideo {
			videos = append(videos, d)
		} else {
			audio++
		}
	}
	p.mu.Unlock()
	for d := range state {
		if !slices.Contains(videos, d) {
			delete(state, d)
		}
	}
	slices.SortFunc(videos, func(a, b *DownTrack) int {
		if (a.src.info.Source == SourceScreen) != (b.src.info.Source == SourceScreen) {
			if a.src.info.Source == SourceScreen {
				return -1
			}
			return 1
		}
		return compareStrings(a.src.info.ID, b.src.info.ID)
	})
	budget := estimate - audio*audioBitrate
	opts := make([][]option, len(videos))
	screen := make([]bool, len(videos))
	for i, d := range videos {
		d.mu.Lock()
		maxWidth, visible := d.maxWidth, d.visible
		d.mu.Unlock()
		if visible != 0 {
			opts[i] = d.src.options(now, maxWidth)
		}
		screen[i] = d.src.info.Source == SourceScreen
	}
	keep := allocate(int(float64(budget)*keepTolerance), opts, screen)
	up := allocate(int(float64(upEstimate-audio*audioBitrate)*upgradeHeadroom), opts, screen)
	if ce := p.log.Check(zap.DebugLevel, "allocation"); ce != nil && len(videos) > 0 {
		ce.Write(zap.Int("estimate", estimate), zap.Int("upEstimate", upEstimate), zap.Int("gcc", p.bwe.TargetBitrate()), zap.Any("bwe", p.bwe.Stats()),
			zap.String("options", fmt.Sprint(opts)), zap.Ints("keep", keep), zap.Ints("up", up))
	}

	var probe probeWanted
	usage := audio * audioBitrate
	for i, d := range videos {
		a := state[d]
		if a == nil {
			// A new subscription starts at what fits now, but no higher than
			// the lowest layer: the estimate has not been tested yet, and
			// climbing is cheaper than a congested start.
			a = &allocation{option: min(max(keep[i], up[i]), lowestLayerTop(opts[i]))}
			state[d] = a
		}
		cur := min(a.option, len(opts[i])-1)
		next := cur
		switch {
		case keep[i] < cur:
			next = keep[i] // downgrade now
			a.upSince = time.Time{}
			if now.Sub(a.lastUp) < flapWindow {
				a.hold = min(2*a.hold, maxUpgradeHold)
			}
			a.lastDown = now
		case up[i] > cur:
			if a.hold == 0 || now.Sub(a.lastDown) > 2*maxUpgradeHold {
				a.hold = upgradeHold
			}
			switch {
			case probed:
				next = up[i]
				a.upSince, a.lastUp = now, now
			case a.upSince.IsZero():
				a.upSince = now
			case now.Sub(a.upSince) >= a.hold:
				next = cur + 1
				a.upSince, a.lastUp = now, now
			}
		default:
			a.upSince = time.Time{}
			if cur+1 < len(opts[i]) && probe.d == nil {
				// Held back by the estimate (or paused): probe for what the best
				// option needs (probeStep keeps each probe modest).
				need := opts[i][len(opts[i])-1].bitrate
				if cur >= 0 {
					need -= opts[i][cur].bitrate
				}
				probe = probeWanted{d: d, need: need}
			}
		}
		a.option = next
		if next >= 0 {
			usage += opts[i][next].bitrate
			d.setTarget(opts[i][next].layer, opts[i][next].temporal)
		} else {
			d.setTarget(-1, allTemporal)
		}
		p.notifyStreamState(d, a)
	}
	if probe.d != nil && probe.d.bound() {
		// Pad so that the link carries the whole rate the upgrade needs, but
		// at most double what it has been seen to carry: a link far
		// narrower than the goal is found out gently, and a wide one is
		// climbed in a few steps.
		probe.target = min(int(float64(usage+probe.need)*probeMargin/upgradeHeadroom), probeStep*max(usage, upEstimate))
		probe.rate = max(probe.target-usage, 50_000)
		return probe
	}
	return probeWanted{}
}

func (d *DownTrack) bound() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.writer != nil
}

// notifyStreamState tells the client when a video's layer or paused state
// changed since it was last told.
func (p *Participant) notifyStreamState(d *DownTrack, a *allocation) {
	d.mu.Lock()
	paused := d.target < 0
	layer := ""
	if d.current >= 0 {
		if l := d.src.layer(d.current); l != nil {
			layer = l.rid
		}
	}
	d.mu.Unlock()
	if a.notifiedOnce && paused == a.sentPaused && layer == a.sentLayer {
		return
	}
	if !paused && layer == "" && !a.notifiedOnce {
		return // not started yet: the first report is the layer it starts on
	}
	a.notifiedOnce, a.sentPaused, a.sentLayer = true, paused, layer
	p.events.OnStreamState(d.src.info.ID, paused, layer)
}

// SetTrackSettings records the size at which the client shows a video
// (0 width: not visible), which caps the layer it is sent.
func (p *Participant) SetTrackSettings(trackID string, width, height int) {
	p.mu.Lock()
	var found *DownTrack
	for d := range p.downs {
		if d.src.info.ID == trackID {
			found = d
		}
	}
	p.mu.Unlock()
	if found == nil {
		return
	}
	p.log.Debug("track settings", zap.String("track", trackID), zap.Int("width", width), zap.Int("height", height))
	found.mu.Lock()
	found.maxWidth, found.visible = width, width
	found.mu.Unlock()
	select {
	case p.allocNeeded <- struct{}{}:
	default:
	}
}

// dynacastState remembers what a publisher was last told about one track.
type dynacastState struct {
	active     int // layers 0..active-1 are on
	neededAt   [maxLayers]time.Time
	told       bool
	lastActive int
}

// dynacast tells this participant which layers of its video tracks anyone
// needs: the largest layer any visible subscriber's tile could use.
func (p *Participant) dynacast(now time.Time, states map[*Track]*dynacastState) {
	p.mu.Lock()
	tracks := make([]*Track, 0, len(p.tracks))
	for _, t := range p.tracks {
		if t.info.Kind == webrtc.RTPCodecTypeVideo {
			tracks = append(tracks, t)
		}
	}
	p.mu.Unlock()
	for t := range states {
		if !slices.Contains(tracks, t) {
			delete(states, t)
		}
	}
	for _, t := range tracks {
		s := states[t]
		if s == nil {
			// A new track keeps every layer for a while: subscribers that are
			// joining have not reported their tiles yet.
			s = &dynacastState{}
			for i := range s.neededAt {
				s.neededAt[i] = now
			}
			states[t] = s
		}
		needed := 0 // layers
		for _, d := range t.downTracks() {
			d.mu.Lock()
			maxWidth, visible := d.maxWidth, d.visible
			d.mu.Unlock()
			if visible != 0 {
				needed = max(needed, t.usefulLayers(maxWidth))
			}
		}
		for i := 0; i < needed; i++ {
			s.neededAt[i] = now
		}
		// On at once when needed; off only after dynacastHold unneeded.
		active := 0
		for i := range maxLayers {
			if now.Sub(s.neededAt[i]) < dynacastHold {
				active = i + 1
			}
		}
		if s.told && active == s.lastActive {
			continue
		}
		s.told, s.lastActive = true, active
		rids := t.Info().Layers
		var on []string
		for i := 0; i < active; i++ {
			if len(rids) == 0 {
				on = append(on, layerRIDs[0]) // single-layer track: "on"
				break
			}
			on = append(on, layerRIDs[i])
		}
		p.events.OnPublishLayers(t.info.ID, t.mid, on)
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// lowestLayerTop is the index of the best option of the lowest spatial layer.
func lowestLayerTop(opts []option) int {
	top := -1
	for i, o := range opts {
		if o.layer != opts[0].layer {
			break
		}
		top = i
	}
	return top
}
