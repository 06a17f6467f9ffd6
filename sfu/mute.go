package sfu

import (
	"go.uber.org/zap"
)

// SetMuted records that the publisher muted (or unmuted) its track on
// transceiver mid: a microphone muted, a camera turned off. A muted track
// is not forwarded, so it costs its subscribers nothing; the others are
// told, so that they show it muted rather than silent or black. Unmuting
// a video asks for a keyframe at once. A mid whose track has not arrived
// yet keeps the state for when it does.
func (p *Participant) SetMuted(mid string, muted bool) {
	p.mu.Lock()
	var t *Track
	for _, x := range p.tracks {
		if x.mid == mid {
			t = x
		}
	}
	if t == nil {
		if _, known := p.mutes[mid]; known || len(p.mutes) < maxSources {
			p.mutes[mid] = muted
		}
		p.mu.Unlock()
		return
	}
	p.mutes[mid] = muted
	p.mu.Unlock()

	if !t.setMuted(muted) {
		return
	}
	p.log.Info("track muted", zap.String("track", t.info.ID), zap.Bool("muted", muted))
	if !muted {
		t.requestKeyframes()
	}
	p.room.mutedChanged(t)
}
