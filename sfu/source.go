package sfu

import (
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// LayerSource is one incoming RTP stream, one layer of a published track,
// that a forwarding loop reads. A publisher's *webrtc.TrackRemote is one; a
// stream relayed from another node or played from a recording can be
// another. Its method set is TrackRemote's, so a publisher's stream needs
// no adapter.
type LayerSource interface {
	// Read reads the next RTP packet into b, the caller's buffer, and
	// returns its length; an error ends the stream.
	Read(b []byte) (n int, a interceptor.Attributes, err error)
	// RID is the simulcast layer's rid, empty without simulcast.
	RID() string
	SSRC() webrtc.SSRC
}

var _ LayerSource = (*webrtc.TrackRemote)(nil)
