package sfu

import "go.uber.org/zap"

// tile is how a subscriber shows one video: the allocator sends no layer
// much wider than maxWidth (0: no limit), and nothing while not visible.
type tile struct {
	maxWidth int
	visible  bool
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
	found.tile = tile{maxWidth: width, visible: width != 0}
	found.mu.Unlock()
	select {
	case p.allocNeeded <- struct{}{}:
	default:
	}
}

// tileNow is the subscriber's tile for d.
func (d *DownTrack) tileNow() tile {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tile
}
