package rtc

// PayloadInfo is what the forwarding path reads from one packet's payload,
// whatever the codec: where a decoder can start, the temporal layer, and a
// keyframe's frame size. Codec.Parse fills it once per packet; every
// subscriber's Munger then reads it, concurrently, and must not change it.
type PayloadInfo struct {
	Keyframe   bool // the first packet of a keyframe: a decoder can start here
	FrameStart bool // the first packet of a frame
	HasTID     bool // the stream is layered in time and this is TID's packet
	TID        uint8
	// Sized is set on a keyframe whose payload gives the frame's Width and
	// Height.
	Sized         bool
	Width, Height uint16

	vp8   VP8Descriptor
	isVP8 bool // vp8 holds the packet's parsed descriptor
}

// Parse reads a packet's payload (without RTP padding) into info. It never
// allocates.
func (c Codec) Parse(payload []byte, info *PayloadInfo) {
	*info = PayloadInfo{}
	if c != CodecVP8 {
		info.Keyframe = IsKeyframeStart(c, payload)
		return
	}
	d, ok := ParseVP8(payload)
	if !ok {
		return
	}
	info.vp8, info.isVP8 = d, true
	info.Keyframe, info.FrameStart = d.Keyframe, d.Start
	info.HasTID, info.TID = d.HasTID, d.TID
	if d.Keyframe {
		info.Width, info.Height, info.Sized = vp8FrameSize(payload[d.Size:])
	}
}

// Munger keeps the numbering a codec's payload carries (VP8's PictureID,
// TL0PICIDX and KEYIDX) continuous in one subscriber's stream while the
// server switches it between sources and drops packets. It is one
// subscriber's state, not safe for concurrent use.
type Munger interface {
	// Start continues the numbering sent so far at info's packet, the
	// first of a keyframe of a new source.
	Start(info *PayloadInfo)
	// Drop accounts for a packet that is not forwarded.
	Drop(info *PayloadInfo)
	// Rewrite returns the payload to send for info's packet: payload
	// itself, or a copy of it in buf with its numbers rewritten (buf must
	// hold payload), and the numbers written, for retransmissions.
	Rewrite(info *PayloadInfo, payload, buf []byte) ([]byte, Munged)
	// Restore writes the numbers m, which Rewrite returned for a packet,
	// into a copy of that packet's source payload, to resend it as it was
	// first sent. It reads none of the munger's state.
	Restore(payload []byte, m Munged)
}

// Munged is what a Munger wrote into one packet.
type Munged struct {
	PictureID uint16
	TL0       uint8
	KeyIdx    uint8
}

// NewMunger returns codec c's Munger: a VP8Munger for VP8, a pass-through
// one for payloads whose numbering needs no rewriting (Opus, H.264; VP9's
// PictureID is forwarded as is).
func NewMunger(c Codec) Munger {
	if c == CodecVP8 {
		return &VP8Munger{}
	}
	return passThrough{}
}

// passThrough forwards payloads unchanged.
type passThrough struct{}

func (passThrough) Start(*PayloadInfo) {}
func (passThrough) Drop(*PayloadInfo)  {}
func (passThrough) Rewrite(_ *PayloadInfo, payload, _ []byte) ([]byte, Munged) {
	return payload, Munged{}
}
func (passThrough) Restore([]byte, Munged) {}
