package client

import (
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// maxPayload keeps packets under a typical 1200-byte path MTU budget, as
// browsers do.
const maxPayload = 1100

const (
	// The descriptor: X=1, I=1 with a 15-bit PictureID, and with temporal
	// layers L=1 and T=1 (TL0PICIDX, then TID/Y/KEYIDX).
	vp8DescriptorLen         = 4
	vp8TemporalDescriptorLen = 6
	maxDescriptorLen         = vp8TemporalDescriptorLen
	vp8KeyHeaderLen          = 10 // frame tag, start code, width and height
	// minVideoData keeps the frame header and the send stamp apart.
	minVideoData = vp8KeyHeaderLen + stampLen
)

// temporalPattern is L1T3's temporal layer id per frame, and whether the
// frame depends on TL0 frames only (Y).
var temporalPattern = [4]struct {
	tid  uint8
	sync bool
}{{0, false}, {2, true}, {1, true}, {2, false}}

// layer is one encoding of the synthetic video: its own track (and rid when
// simulcast), sequence numbers, timestamps and PictureIDs.
type layer struct {
	track         *webrtc.TrackLocalStaticRTP
	rid           string
	bitrate       int
	width, height int
	temporal      bool // L1T3 temporal layer ids in the descriptor
	// active is cleared when the server says nobody needs the layer
	// (publish-layers); the layer then sends nothing.
	active atomic.Bool

	tsStep    uint32 // RTP timestamp units per frame
	sn        uint16
	ts        uint32
	pictureID uint16
	tl0       uint8
	frame     int // frames sent, for the temporal pattern
	// ext carries the mid and rid header extensions of a simulcast layer, as
	// a browser sends them, once the negotiation fixed their ids.
	ext []rtp.Extension
}

// newLayers returns the video encodings opts ask for: one, or q, h and f
// with L1T3 temporal layers, as the web client publishes them.
func newLayers(opts Options) ([]*layer, error) {
	type spec struct {
		rid      string
		num, den int // share of VideoBitrate
		w, h     int
		temporal bool
	}
	specs := []spec{{"", 1, 1, 1280, 720, false}}
	if opts.Simulcast {
		specs = []spec{{"q", 1, 10, 320, 180, true}, {"h", 3, 10, 640, 360, true}, {"f", 1, 1, 1280, 720, true}}
	}
	var layers []*layer
	for _, s := range specs {
		var trackOpts []func(*webrtc.TrackLocalStaticRTP)
		if s.rid != "" {
			trackOpts = append(trackOpts, webrtc.WithRTPStreamID(s.rid))
		}
		t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
			"video", "synthetic", trackOpts...)
		if err != nil {
			return nil, err
		}
		l := &layer{
			track: t, rid: s.rid, bitrate: opts.VideoBitrate * s.num / s.den, width: s.w, height: s.h, temporal: s.temporal,
			tsStep: uint32(90000 / max(opts.FPS, 1)),
			sn:     uint16(rand.Uint32()), ts: rand.Uint32(), pictureID: uint16(rand.IntN(1 << 15)), tl0: uint8(rand.Uint32()),
		}
		l.active.Store(true)
		layers = append(layers, l)
	}
	return layers, nil
}

// sendVideo writes synthetic VP8 frames on every active layer: real payload
// descriptors with 15-bit PictureIDs (and temporal layer ids when
// simulcast), keyframes (with the VP8 start code and dimensions) at the
// interval or when asked, four times the size of a delta frame, and delta
// frames varying by a quarter around their mean, so that each layer runs at
// its bitrate on average. Every packet ends with a send stamp.
func (c *Client) sendVideo(tr *webrtc.RTPTransceiver) {
	defer c.wg.Done()
	fps := c.opts.FPS
	tick := time.NewTicker(time.Second / time.Duration(fps))
	defer tick.Stop()
	// With a keyframe of 4 deltas every k frames, the mean frame is
	// (k+3)/k deltas.
	k := max(int(c.opts.KeyframeInterval.Seconds()*float64(fps)), 1)
	lastKey := time.Time{}
	buf := make([]byte, maxPayload+maxDescriptorLen)
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
		}
		if len(c.video) > 1 && c.video[0].ext == nil {
			setSimulcastExtensions(tr, c.video)
		}
		key := c.keyframe.Swap(false) || time.Since(lastKey) >= c.opts.KeyframeInterval
		if key {
			lastKey = time.Now()
		}
		variation := 0.75 + rand.Float64()/2
		for _, l := range c.video {
			if !l.active.Load() {
				continue
			}
			delta := float64(l.bitrate) / 8 / float64(fps) * float64(k) / float64(k+3)
			size := int(delta * variation)
			if key {
				size = int(4 * delta)
			}
			if err := l.writeFrame(buf, size, key, l.track.WriteRTP); err != nil {
				return
			}
		}
	}
}

// setActive applies publish-layers: only the layers named in rids send (a
// single-layer video, whatever the server calls its layer, sends unless rids
// is empty). A layer that starts again starts with a keyframe, as a
// browser's encoder does.
func (c *Client) setActive(rids []string) {
	restarted := false
	for _, l := range c.video {
		on := slices.Contains(rids, l.rid) || (len(c.video) == 1 && len(rids) > 0)
		if on && !l.active.Load() {
			restarted = true
		}
		l.active.Store(on)
	}
	if restarted {
		c.keyframe.Store(true)
	}
}

// writeFrame sends one frame of size bytes (at least minVideoData) in
// packets of nearly equal size, and advances the layer to the next frame.
// buf must hold maxPayload+maxDescriptorLen.
func (l *layer) writeFrame(buf []byte, size int, key bool, write func(*rtp.Packet) error) error {
	// Every packet holds a stamp, the first also the frame header.
	size = max(size, minVideoData)
	packets := (size + maxPayload - 1) / maxPayload
	per := (size + packets - 1) / packets // the last packet gets the rest
	if key {
		l.frame = 0 // a keyframe is TL0 and restarts the pattern
	}
	tp := temporalPattern[l.frame%len(temporalPattern)]
	if l.temporal && tp.tid == 0 {
		l.tl0++
	}
	descLen := vp8DescriptorLen
	if l.temporal {
		descLen = vp8TemporalDescriptorLen
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, Timestamp: l.ts}}
	if l.ext != nil {
		pkt.Header.Extension = true
		pkt.Header.ExtensionProfile = 0xBEDE
	}
	for i := range packets {
		n := per
		if i == packets-1 {
			n = size - per*(packets-1)
		}
		payload := buf[:descLen+n]
		// X=1, S on the frame's first packet, partition 0; I=1 with a
		// 15-bit PictureID; L and T with temporal layers.
		payload[0] = 0x80
		if i == 0 {
			payload[0] |= 0x10
		}
		payload[1] = 0x80
		payload[2] = 0x80 | byte(l.pictureID>>8)
		payload[3] = byte(l.pictureID)
		if l.temporal {
			payload[1] |= 0x60
			payload[4] = l.tl0
			payload[5] = tp.tid << 6
			if tp.sync {
				payload[5] |= 0x20
			}
		}
		data := payload[descLen:]
		clear(data)
		if i == 0 {
			writeVP8Header(data, key, l.width, l.height)
		}
		putStamp(payload, time.Now().UnixNano())
		pkt.SequenceNumber = l.sn
		pkt.Marker = i == packets-1
		pkt.Payload = payload
		// The interceptors may append to the extensions (TWCC), so each
		// packet gets a full slice that cannot alias the layer's array.
		pkt.Extensions = l.ext[:len(l.ext):len(l.ext)]
		l.sn++
		if err := write(&pkt); err != nil {
			return err
		}
	}
	l.ts += l.tsStep
	l.pictureID = (l.pictureID + 1) & 0x7fff
	l.frame++
	return nil
}

// writeVP8Header writes the 3-byte frame tag (RFC 6386 section 9.1) and, for
// a keyframe, the start code and dimensions.
func writeVP8Header(b []byte, key bool, width, height int) {
	// Bit 0: 0 for a keyframe; bits 1-3: version 0; bit 4: show_frame;
	// bits 5-23: first partition size (any plausible value).
	b[0], b[1], b[2] = 0x11, 0x02, 0x00
	if !key {
		return
	}
	b[0] = 0x10
	b[3], b[4], b[5] = 0x9d, 0x01, 0x2a
	b[6], b[7] = byte(width), byte(width>>8)
	b[8], b[9] = byte(height), byte(height>>8)
}

// setSimulcastExtensions gives each layer the mid and rid header extensions,
// once the publisher's answer fixed their ids; without them the receiver
// cannot tell the layers apart.
func setSimulcastExtensions(tr *webrtc.RTPTransceiver, layers []*layer) {
	var midID, ridID int
	for _, e := range tr.Sender().GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			midID = e.ID
		case sdp.SDESRTPStreamIDURI:
			ridID = e.ID
		}
	}
	mid := tr.Mid()
	if midID == 0 || ridID == 0 || mid == "" {
		return
	}
	for _, l := range layers {
		var h rtp.Header
		if h.SetExtension(uint8(midID), []byte(mid)) != nil || h.SetExtension(uint8(ridID), []byte(l.rid)) != nil {
			return
		}
		l.ext = h.Extensions
	}
}

// sendAudio writes 20 ms packets of Opus-sized payload (about 64 kbit/s),
// each ending with a send stamp.
func (c *Client) sendAudio() {
	defer c.wg.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	sn := uint16(rand.Uint32())
	ts := rand.Uint32()
	payload := make([]byte, 160)
	payload[0] = 0xfc // TOC: CELT fullband 20 ms, stereo, one frame
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
		}
		putStamp(payload, time.Now().UnixNano())
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: sn, Timestamp: ts}, Payload: payload}
		if c.opts.Speaking {
			if id := c.audioLevelID(); id != 0 {
				_ = pkt.Header.SetExtension(id, []byte{0x80 | 20}) // voice, -20 dBov
			}
		}
		sn++
		ts += 960
		if err := c.audio.WriteRTP(&pkt); err != nil {
			return
		}
	}
}

// audioLevelID is the negotiated id of the audio level extension, 0 before
// negotiation or without it.
func (c *Client) audioLevelID() uint8 {
	for _, e := range c.audioSender.GetParameters().HeaderExtensions {
		if e.URI == sdp.AudioLevelURI {
			return uint8(e.ID)
		}
	}
	return 0
}
