package sfu

import (
	"slices"
	"time"

	"github.com/pion/webrtc/v4"
)

// Dynacast: a publisher is told which simulcast layers of each video
// anyone needs, the largest layer any visible subscriber's tile could use,
// so that it does not encode and send the others. A layer goes on at once
// when needed and off only after dynacastHold unneeded.
const dynacastHold = 3 * time.Second

// dynacastState remembers what a publisher was last told about one track.
type dynacastState struct {
	active     int // layers 0..active-1 are on
	neededAt   [maxLayers]time.Time
	told       bool
	lastActive int
}

// newDynacastState starts a track with every layer on for a while:
// subscribers that are joining have not reported their tiles yet.
func newDynacastState(now time.Time) *dynacastState {
	s := &dynacastState{}
	for i := range s.neededAt {
		s.neededAt[i] = now
	}
	return s
}

// update takes how many layers the subscribers need now and returns the
// layers that are to be on, and whether the publisher must be told.
func (s *dynacastState) update(now time.Time, needed int) (active int, tell bool) {
	for i := 0; i < needed; i++ {
		s.neededAt[i] = now
	}
	for i := range maxLayers {
		if now.Sub(s.neededAt[i]) < dynacastHold {
			active = i + 1
		}
	}
	if s.told && active == s.lastActive {
		return active, false
	}
	s.told, s.lastActive = true, active
	return active, true
}

// neededLayers is how many layers of a track the subscribers' tiles can
// use, given the track's layer widths.
func neededLayers(simulcast bool, widths [maxLayers]int, tiles []tile) int {
	needed := 0
	for _, tl := range tiles {
		if tl.visible {
			needed = max(needed, usefulLayers(simulcast, widths, tl.maxWidth))
		}
	}
	return needed
}

// publishLayers are the rids to tell a publisher to send for active
// layers; a track without simulcast is "on" as its lowest rid.
func publishLayers(active int, simulcast bool) []string {
	var on []string
	for i := 0; i < active; i++ {
		if !simulcast {
			on = append(on, layerRIDs[0])
			break
		}
		on = append(on, layerRIDs[i])
	}
	return on
}

// dynacast applies dynacast to this participant's video tracks.
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
			s = newDynacastState(now)
			states[t] = s
		}
		downs := t.downTracks()
		tiles := make([]tile, len(downs))
		for i, d := range downs {
			tiles[i] = d.tileNow()
		}
		simulcast := len(t.Info().Layers) > 0
		needed := neededLayers(simulcast, t.layerWidths(), tiles)
		t.mu.Lock()
		needed = max(needed, t.remoteDemandLocked())
		t.mu.Unlock()
		active, tell := s.update(now, needed)
		if tell {
			p.events.OnPublishLayers(t.info.ID, t.mid, publishLayers(active, simulcast))
		}
	}
}
