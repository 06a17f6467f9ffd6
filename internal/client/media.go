package client

import (
	"math/rand/v2"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// maxPayload keeps packets under a typical 1200-byte path MTU budget, as
// browsers do.
const maxPayload = 1100

const (
	vp8DescriptorLen = 4  // X=1, I=1 with a 15-bit PictureID
	vp8KeyHeaderLen  = 10 // frame tag, start code, width and height
	// minVideoData keeps the frame header and the send stamp apart.
	minVideoData = vp8KeyHeaderLen + stampLen
)

// layer is one encoding of the synthetic video: its own track (and rid when
// simulcast), sequence numbers, timestamps and PictureIDs.
type layer struct {
	track         *webrtc.TrackLocalStaticRTP
	rid           string
	bitrate       int
	width, height int

	sn        uint16
	ts        uint32
	pictureID uint16
	// ext carries the mid and rid header extensions of a simulcast layer, as
	// a browser sends them, once the negotiation fixed their ids.
	ext []rtp.Extension
}

// newLayers returns the video encodings opts ask for: one, or q, h and f.
func newLayers(opts Options) ([]*layer, error) {
	type spec struct {
		rid     string
		divisor int
		w, h    int
	}
	specs := []spec{{"", 1, 640, 480}}
	if opts.Simulcast {
		specs = []spec{{"q", 16, 160, 120}, {"h", 4, 320, 240}, {"f", 1, 640, 480}}
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
		layers = append(layers, &layer{
			track: t, rid: s.rid, bitrate: opts.VideoBitrate / s.divisor, width: s.w, height: s.h,
			sn: uint16(rand.Uint32()), ts: rand.Uint32(), pictureID: uint16(rand.IntN(1 << 15)),
		})
	}
	return layers, nil
}

// sendVideo writes synthetic VP8 frames on every layer: real payload
// descriptors with 15-bit PictureIDs, keyframes (with the VP8 start code and
// dimensions) at the interval or when asked, four times the size of a delta
// frame, and delta frames varying by a quarter around their mean, so that
// each layer runs at its bitrate on average. Every packet ends with a send
// stamp.
func (c *Client) sendVideo(tr *webrtc.RTPTransceiver) {
	defer c.wg.Done()
	fps := c.opts.FPS
	tick := time.NewTicker(time.Second / time.Duration(fps))
	defer tick.Stop()
	// With a keyframe of 4 deltas every k frames, the mean frame is
	// (k+3)/k deltas.
	k := max(int(c.opts.KeyframeInterval.Seconds()*float64(fps)), 1)
	lastKey := time.Time{}
	buf := make([]byte, maxPayload+vp8DescriptorLen)
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
			delta := float64(l.bitrate) / 8 / float64(fps) * float64(k) / float64(k+3)
			size := int(delta * variation)
			if key {
				size = int(4 * delta)
			}
			if err := l.writeFrame(buf, size, key, l.track.WriteRTP); err != nil {
				return
			}
			l.ts += uint32(90000 / fps)
			l.pictureID = (l.pictureID + 1) & 0x7fff
		}
	}
}

// writeFrame sends one frame of size bytes (at least minVideoData) in
// packets of nearly equal size. buf must hold maxPayload+vp8DescriptorLen.
func (l *layer) writeFrame(buf []byte, size int, key bool, write func(*rtp.Packet) error) error {
	// Every packet holds a stamp, the first also the frame header.
	size = max(size, minVideoData)
	packets := (size + maxPayload - 1) / maxPayload
	per := (size + packets - 1) / packets // the last packet gets the rest
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
		payload := buf[:vp8DescriptorLen+n]
		// Descriptor: X=1, S on the frame's first packet, partition 0; I=1
		// with a 15-bit PictureID.
		payload[0] = 0x80
		if i == 0 {
			payload[0] |= 0x10
		}
		payload[1] = 0x80
		payload[2] = 0x80 | byte(l.pictureID>>8)
		payload[3] = byte(l.pictureID)
		data := payload[vp8DescriptorLen:]
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
		sn++
		ts += 960
		if err := c.audio.WriteRTP(&pkt); err != nil {
			return
		}
	}
}
