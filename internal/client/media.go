package client

import (
	"math/rand/v2"
	"time"

	"github.com/pion/rtp"
)

// maxPayload keeps packets under a typical 1200-byte path MTU budget.
const maxPayload = 1100

// sendVideo writes synthetic VP8 frames: real payload descriptors with
// 15-bit PictureIDs, keyframes at the interval or when asked, sized so that
// the stream runs at the configured bitrate.
func (c *Client) sendVideo() {
	defer c.wg.Done()
	frameInterval := time.Second / time.Duration(c.opts.FPS)
	frameBytes := c.opts.VideoBitrate / 8 / c.opts.FPS
	tick := time.NewTicker(frameInterval)
	defer tick.Stop()
	sn := uint16(rand.Uint32())
	ts := rand.Uint32()
	pictureID := uint16(rand.IntN(1 << 15))
	lastKey := time.Time{}
	buf := make([]byte, maxPayload+4)
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
		}
		key := c.keyframe.Swap(false) || time.Since(lastKey) >= c.opts.KeyframeInterval
		size := frameBytes
		if key {
			size *= 4
			lastKey = time.Now()
		}
		for first := true; size > 0 || first; first = false {
			n := min(size, maxPayload)
			size -= n
			// Descriptor: X=1, S on the frame's first packet, PID 0; I=1 with
			// a 15-bit PictureID.
			buf[0] = 0x80
			if first {
				buf[0] |= 0x10
			}
			buf[1] = 0x80
			buf[2] = 0x80 | byte(pictureID>>8)
			buf[3] = byte(pictureID)
			payload := buf[:4+max(n, 3)]
			for i := 4; i < len(payload); i++ {
				payload[i] = byte(i)
			}
			if first {
				// VP8 frame header: bit 0 is 0 for a keyframe.
				payload[4] = 0x01
				if key {
					payload[4] = 0x00
				}
			}
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, Marker: size == 0, SequenceNumber: sn, Timestamp: ts}, Payload: payload}
			sn++
			if err := c.video.WriteRTP(&pkt); err != nil {
				return
			}
		}
		ts += uint32(90000 / c.opts.FPS)
		pictureID = (pictureID + 1) & 0x7fff
	}
}

// sendAudio writes 20 ms packets of Opus-sized payload (about 64 kbit/s).
func (c *Client) sendAudio() {
	defer c.wg.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	sn := uint16(rand.Uint32())
	ts := rand.Uint32()
	payload := make([]byte, 160)
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
		}
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: sn, Timestamp: ts}, Payload: payload}
		sn++
		ts += 960
		if err := c.audio.WriteRTP(&pkt); err != nil {
			return
		}
	}
}
