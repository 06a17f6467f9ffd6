package sfu

import (
	"cmp"
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
//
// The policy is pure: plan takes snapshots of a subscriber's videos and of
// its link and returns decisions, and the participant (reallocate) takes
// the snapshots and applies the decisions.
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
	probeMargin = 1.15
	rateWindow  = 2 * time.Second // two seconds smooth a keyframe's burst
	liveTimeout = 1500 * time.Millisecond
)

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
	hold     time.Duration
	lastUp   time.Time
	lastDown time.Time
	notice   streamNotice
	// hidden: the video had no options (its tile not visible). When it is
	// shown again it starts as a new subscription does, at once, rather
	// than waiting out an upgrade's hold: a tab brought back to the front
	// shows its videos within a keyframe, not seconds later.
	hidden bool
}

// allocator is one subscriber's allocation state.
type allocator struct {
	state map[*DownTrack]*allocation
}

func newAllocator() *allocator { return &allocator{state: map[*DownTrack]*allocation{}} }

// videoSnapshot is one video down-track as the allocator sees it.
type videoSnapshot struct {
	down   *DownTrack // which one: the allocator's state is kept by it
	id     string     // the track's, for a stable order
	screen bool
	// speaking is its publisher's place among the room's active speakers
	// (1 the loudest), 0 when not speaking: when bandwidth is short, who is
	// talking is seen first.
	speaking int
	opts     []option // in ascending cost; none while the video is not visible
	bound    bool     // it can carry probe padding
}

// linkSnapshot is what the allocator may spend.
type linkSnapshot struct {
	keep int // what the videos may go on receiving
	up   int // what upgrades must fit in
	// probed says up was just confirmed by a probe, which held the rate for
	// longer than any upgrade hold: upgrades it allows are made at once.
	probed bool
	audio  int // audio tracks, each costing audioBitrate
}

// videoDecision is the option a video is to be sent.
type videoDecision struct {
	down     *DownTrack
	option   int // index in the snapshot's opts; -1 paused
	layer    int // -1 paused
	temporal uint8
}

// allocationPlan is one round's decisions, with what they were made from
// for the debug log.
type allocationPlan struct {
	videos   []videoDecision // screens first, then by track id
	probe    probeWanted     // d nil: no probe
	opts     [][]option
	keep, up []int
}

// probeWanted says which down-track to pad and how much, when a video is
// held back by the estimate.
type probeWanted struct {
	d      *DownTrack
	need   int // what the next option costs more
	rate   int // padding, bit/s
	target int // the estimate that would allow the upgrade
}

// plan runs one round of the allocator over a subscriber's videos: which
// option each gets, and whether to probe for more.
func (al *allocator) plan(now time.Time, link linkSnapshot, videos []videoSnapshot) allocationPlan {
	for d := range al.state {
		if !slices.ContainsFunc(videos, func(v videoSnapshot) bool { return v.down == d }) {
			delete(al.state, d)
		}
	}
	videos = slices.Clone(videos)
	slices.SortFunc(videos, func(a, b videoSnapshot) int {
		if a.screen != b.screen {
			if a.screen {
				return -1
			}
			return 1
		}
		if a.speaking != b.speaking {
			// 0 (not speaking) after any place.
			return cmp.Compare(uint(a.speaking-1), uint(b.speaking-1))
		}
		return compareStrings(a.id, b.id)
	})
	budget := link.keep - link.audio*audioBitrate
	opts := make([][]option, len(videos))
	screen := make([]bool, len(videos))
	for i, v := range videos {
		opts[i], screen[i] = v.opts, v.screen
	}
	keep := allocate(int(float64(budget)*keepTolerance), opts, screen)
	up := allocate(int(float64(link.up-link.audio*audioBitrate)*upgradeHeadroom), opts, screen)
	plan := allocationPlan{opts: opts, keep: keep, up: up, videos: make([]videoDecision, len(videos))}

	var probe probeWanted
	probeBound := false
	usage := link.audio * audioBitrate
	for i, v := range videos {
		a := al.state[v.down]
		if a == nil {
			// A new subscription starts at what fits now, but no higher than
			// the lowest layer: the estimate has not been tested yet, and
			// climbing is cheaper than a congested start.
			a = &allocation{option: min(max(keep[i], up[i]), lowestLayerTop(opts[i]))}
			al.state[v.down] = a
		}
		switch {
		case len(opts[i]) == 0:
			a.hidden = true
		case a.hidden:
			a.hidden = false
			a.option, a.upSince = min(up[i], lowestLayerTop(opts[i])), time.Time{}
		}
		cur := min(a.option, len(opts[i])-1)
		next, heldBack := a.step(now, cur, keep[i], up[i], link.probed)
		if heldBack && cur+1 < len(opts[i]) && probe.d == nil {
			// Held back by the estimate (or paused): probe for what the best
			// option needs (probeStep keeps each probe modest).
			need := opts[i][len(opts[i])-1].bitrate
			if cur >= 0 {
				need -= opts[i][cur].bitrate
			}
			probe, probeBound = probeWanted{d: v.down, need: need}, v.bound
		}
		dec := videoDecision{down: v.down, option: next, layer: -1, temporal: allTemporal}
		if next >= 0 {
			usage += opts[i][next].bitrate
			dec.layer, dec.temporal = opts[i][next].layer, opts[i][next].temporal
		}
		plan.videos[i] = dec
	}
	if probe.d != nil && probeBound {
		// Pad so that the link carries the whole rate the upgrade needs, but
		// at most double what it is taken to carry (link.keep: the start
		// assumption until a probe or congestion says more): a link far
		// narrower than the goal is found out gently, and a wide one is
		// climbed in a few steps. Doubling from what a new subscriber is
		// sent at first instead (audio and the lowest layer, or nothing
		// for a single-layer video over the assumption) took five probes,
		// some 11 s, to reach a 2 Mbit/s camera.
		probe.target = min(int(float64(usage+probe.need)*probeMargin/upgradeHeadroom), probeStep*max(usage, link.keep))
		probe.rate = max(probe.target-usage, 50_000)
		plan.probe = probe
	}
	return plan
}

// step moves a video from option cur towards keep (at once) or up (after
// the hold, one option at a time, unless probed) and returns its next
// option; heldBack when neither applies.
func (a *allocation) step(now time.Time, cur, keep, up int, probed bool) (next int, heldBack bool) {
	next = cur
	switch {
	case keep < cur:
		next = keep // downgrade now
		a.upSince = time.Time{}
		if now.Sub(a.lastUp) < flapWindow {
			a.hold = min(2*a.hold, maxUpgradeHold)
		}
		a.lastDown = now
	case up > cur:
		if a.hold == 0 || now.Sub(a.lastDown) > 2*maxUpgradeHold {
			a.hold = upgradeHold
		}
		switch {
		case probed:
			next = up
			a.upSince, a.lastUp = now, now
		case a.upSince.IsZero():
			a.upSince = now
		case now.Sub(a.upSince) >= a.hold:
			next = cur + 1
			a.upSince, a.lastUp = now, now
		}
	default:
		a.upSince = time.Time{}
		heldBack = true
	}
	a.option = next
	return next, heldBack
}

// streamNotice is what a subscriber was last told of one video's state.
type streamNotice struct {
	told   bool
	paused bool
	layer  string
}

// update takes a video's state now and reports whether the subscriber must
// be told: when it changed since it was last told, but not before the
// video started (the first report is the layer it starts on) unless it is
// paused first.
func (n *streamNotice) update(paused bool, layer string) bool {
	if n.told && paused == n.paused && layer == n.layer {
		return false
	}
	if !paused && layer == "" && !n.told {
		return false
	}
	n.told, n.paused, n.layer = true, paused, layer
	return true
}

// allocateLoop runs the allocator and, for this participant's own tracks,
// dynacast, until the participant leaves.
func (p *Participant) allocateLoop() {
	defer p.wg.Done()
	tick := time.NewTicker(allocationInterval)
	defer tick.Stop()
	probeTick := time.NewTicker(probeInterval)
	probeTick.Stop()
	al := newAllocator()
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
				p.log.Debug("probe succeeded", zap.Int("target", probe.target), zap.Int("delivered", p.bwe.Snapshot().Delivered))
				probed = true // act on it now
			case probeFailed:
				p.log.Debug("probe failed", zap.Int("target", probe.target), zap.Int("delivered", p.bwe.Snapshot().Delivered),
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
		want := p.reallocate(now, al, keepEst, upEst, probed)
		probed = false
		if want.d != nil && !probe.on && now.After(probe.next) {
			probe.start(now, want.d.writePadding, want.target, want.rate)
			probeTick.Reset(probeInterval)
			p.log.Debug("probing", zap.Int("estimate", p.bwe.Snapshot().Target), zap.Int("target", want.target),
				zap.Int("padding", want.rate))
		}
		p.dynacast(now, dynacast)
	}
}

// reallocate runs one round of the allocator for this participant's
// subscriptions: it takes their snapshots, plans, sets each video's target
// and tells the client what changed. It returns the probe wanted.
func (p *Participant) reallocate(now time.Time, al *allocator, estimate, upEstimate int, probed bool) probeWanted {
	p.mu.Lock()
	var downs []*DownTrack
	audio := 0
	for d := range p.downs {
		if d.src.info.Kind == webrtc.RTPCodecTypeVideo {
			downs = append(downs, d)
		} else {
			audio++
		}
	}
	p.mu.Unlock()
	videos := make([]videoSnapshot, len(downs))
	for i, d := range downs {
		v := videoSnapshot{down: d, id: d.src.info.ID, screen: d.src.info.Source == SourceScreen, bound: d.bound(),
			speaking: p.room.speakerRank(d.src.info.Participant) + 1}
		if tl := d.tileNow(); tl.visible {
			v.opts = d.src.options(now, tl.maxWidth)
		}
		videos[i] = v
	}
	plan := al.plan(now, linkSnapshot{keep: estimate, up: upEstimate, probed: probed, audio: audio}, videos)
	if ce := p.log.Check(zap.DebugLevel, "allocation"); ce != nil && len(videos) > 0 {
		ce.Write(zap.Int("estimate", estimate), zap.Int("upEstimate", upEstimate), zap.Int("gcc", p.bwe.Snapshot().Target), zap.Any("bwe", p.bwe.Stats()),
			zap.String("options", fmt.Sprint(plan.opts)), zap.Ints("keep", plan.keep), zap.Ints("up", plan.up))
	}
	for _, v := range plan.videos {
		v.down.setTarget(v.layer, v.temporal)
		paused, layer := v.down.streamState()
		if al.state[v.down].notice.update(paused, layer) {
			p.events.OnStreamState(v.down.src.info.ID, paused, layer)
		}
	}
	return plan.probe
}

func (d *DownTrack) bound() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.writer != nil
}

// streamState is what the subscriber is told of d: whether it is paused,
// and the rid of the layer it is sent ("" before it starts).
func (d *DownTrack) streamState() (paused bool, layer string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.current >= 0 {
		if l := d.src.layer(d.current); l != nil {
			layer = l.rid
		}
	}
	return d.target < 0, layer
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
