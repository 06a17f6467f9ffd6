package sfu

import (
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// Active speakers: publishers send each audio packet's level (RFC 6464,
// 0 the loudest to 127 silence, in -dBov); the forwarding loop counts the
// packets louder than room noise (audioLevels, two atomic adds, no
// allocation), and every speakerInterval the room turns each count into a
// speaking activity and the detector below into an order of speakers,
// loudest first. Speech is voiced in about half its packets (the rest are
// the pauses between syllables and words); a voice that fills half of an
// interval counts as fully active.

const (
	speakerInterval = 200 * time.Millisecond
	// speakerTimeConstant smooths the activity: a cough or a door closing
	// (a few hundred milliseconds) does not reach speakerEnter; a sentence
	// does within about 600 ms.
	speakerTimeConstant = time.Second
	speakerEnter        = 0.35 // smoothed activity at which one becomes a speaker
	speakerLeave        = 0.15 // and below which one stops being one
	speakerMargin       = 1.25 // how much more active a speaker must be to pass another
	// speakerHangover keeps a speaker through the pauses of speech: one
	// stops being a speaker only after this long without a voiced
	// interval, however low the smoothed activity falls.
	speakerHangover = 1500 * time.Millisecond
	voicedInterval  = 0.5 // an interval's activity that counts as voiced
	// levelVoiced: a packet louder than this (in -dBov) carries voice, not
	// room noise.
	levelVoiced = 50
)

// activity is how much someone spoke in an interval in which voiced of
// their total audio packets carried voice, 0-1.
func activity(voiced, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return min(1, 2*float64(voiced)/float64(total))
}

// speakerDetector ranks a room's participants by their smoothed speaking
// activity. It is pure: observe and order take the time.
type speakerDetector struct {
	energy map[string]float64       // smoothed activity by participant
	quiet  map[string]time.Duration // since their last voiced interval
	order  []string                 // the speakers, as last ranked
}

func newSpeakerDetector() *speakerDetector {
	return &speakerDetector{energy: map[string]float64{}, quiet: map[string]time.Duration{}}
}

// observe takes one interval's activity of each participant that has an
// unmuted microphone; the others fade out.
func (sd *speakerDetector) observe(interval time.Duration, activities map[string]float64) {
	decay := math.Exp(-float64(interval) / float64(speakerTimeConstant))
	for id, e := range sd.energy {
		if _, ok := activities[id]; !ok {
			sd.quiet[id] += interval
			if e *= decay; e < 0.01 && sd.quiet[id] >= speakerHangover {
				delete(sd.energy, id)
				delete(sd.quiet, id)
			} else {
				sd.energy[id] = e
			}
		}
	}
	for id, a := range activities {
		sd.energy[id] = sd.energy[id]*decay + a*(1-decay)
		if a >= voicedInterval {
			sd.quiet[id] = 0
		} else {
			sd.quiet[id] += interval
		}
	}
}

// rank returns the speakers, loudest first, and whether that differs from
// the last ranking. Someone becomes a speaker at speakerEnter and stays
// one down to speakerLeave, or while voiced within speakerHangover; a speaker passes one ranked before only when
// louder by speakerMargin, so that two voices of about the same level do
// not swap places at every breath.
func (sd *speakerDetector) rank() ([]string, bool) {
	var next []string
	for _, id := range sd.order {
		if sd.energy[id] >= speakerLeave || sd.quiet[id] < speakerHangover {
			next = append(next, id)
		}
	}
	for id, e := range sd.energy {
		if e >= speakerEnter && !slices.Contains(next, id) {
			next = append(next, id)
		}
	}
	// Insertion sort from the incumbents' order: one moves ahead of
	// another only past the margin.
	for i := 1; i < len(next); i++ {
		for j := i; j > 0 && sd.energy[next[j]] > sd.energy[next[j-1]]*speakerMargin; j-- {
			next[j], next[j-1] = next[j-1], next[j]
		}
	}
	changed := !slices.Equal(next, sd.order)
	sd.order = next
	return next, changed
}

// level returns the smoothed activity of a participant, 0-1.
func (sd *speakerDetector) level(id string) float64 { return sd.energy[id] }

// audioLevels tallies one audio track's packets between two rankings. The
// forwarding loop adds; the room's ranking takes.
type audioLevels struct {
	voiced, total atomic.Uint64
}

// add reads the RFC 6464 level of one packet: one byte, the voice flag
// and the level in -dBov (0-127).
func (a *audioLevels) add(h *rtp.Header, ext uint8) {
	if b := h.GetExtension(ext); len(b) > 0 {
		if b[0]&0x7f < levelVoiced {
			a.voiced.Add(1)
		}
		a.total.Add(1)
	}
}

// take returns the activity since the last take; false if no packet
// carried a level.
func (a *audioLevels) take() (float64, bool) {
	total := a.total.Swap(0)
	voiced := a.voiced.Swap(0)
	if total == 0 {
		return 0, false
	}
	return activity(voiced, total), true
}
