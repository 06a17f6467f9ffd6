package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/rtc"
)

// keyframeInterval bounds how often a publisher is asked for a keyframe per
// track: one PLI answers every subscriber that asked in the meantime.
const keyframeInterval = 500 * time.Millisecond

// Track is one media track a participant publishes. Its forwarding loop
// reads each RTP packet once, keeps a copy for retransmissions, and writes it
// to one DownTrack per subscriber.
type Track struct {
	info   TrackInfo
	remote *webrtc.TrackRemote
	codec  rtc.Codec
	cap    webrtc.RTPCodecCapability
	ssrc   uint32
	// cache is nil for audio: Opus is not retransmitted.
	cache     *rtc.PacketCache
	writeRTCP func([]rtcp.Packet) error
	log       *zap.Logger
	stats     counters

	// downs is read by the forwarding loop on every packet without a lock;
	// writers copy it under mu.
	downs               atomic.Pointer[[]*DownTrack]
	mu                  sync.Mutex
	closed              bool
	lastKeyframeRequest time.Time
	keyframeTimer       *time.Timer // a merged request waiting for its turn
}

func newTrack(info TrackInfo, remote *webrtc.TrackRemote, writeRTCP func([]rtcp.Packet) error, log *zap.Logger) *Track {
	codec := remote.Codec()
	t := &Track{
		info:      info,
		remote:    remote,
		codec:     rtc.CodecOf(codec.MimeType),
		cap:       codec.RTPCodecCapability,
		ssrc:      uint32(remote.SSRC()),
		writeRTCP: writeRTCP,
		log:       log,
	}
	if info.Kind == webrtc.RTPCodecTypeVideo {
		t.cache = &rtc.PacketCache{}
	}
	t.downs.Store(&[]*DownTrack{})
	return t
}

// Info describes the track for signaling.
func (t *Track) Info() TrackInfo { return t.info }

// forward is the forwarding loop. It returns when the publisher's track ends.
func (t *Track) forward() {
	buf := make([]byte, 1500)
	var h rtp.Header
	for {
		n, _, err := t.remote.Read(buf)
		if err != nil {
			return
		}
		hl, err := h.Unmarshal(buf[:n])
		if err != nil {
			continue // not RTP; one bad packet must not end the track
		}
		// payload keeps any padding: it is forwarded as it came.
		payload := buf[hl:n]
		media := payload
		if h.Padding && len(media) > 0 {
			pad := int(media[len(media)-1])
			if pad > len(media) {
				continue
			}
			media = media[:len(media)-pad]
		}
		t.stats.packetsIn.Add(1)
		t.stats.bytesIn.Add(uint64(n))
		if t.cache != nil {
			t.cache.Store(h.SequenceNumber, buf[:n])
		}
		keyframe := rtc.IsKeyframeStart(t.codec, media)
		for _, d := range *t.downs.Load() {
			d.writeRTP(&h, payload, keyframe)
		}
	}
}

// RequestKeyframe asks the publisher for a keyframe. Requests within
// keyframeInterval of the last one are merged into one sent when the
// interval ends, so a subscriber that asks just after another still gets
// its keyframe promptly and the publisher is never flooded.
func (t *Track) RequestKeyframe() {
	if t.info.Kind != webrtc.RTPCodecTypeVideo {
		return
	}
	t.mu.Lock()
	if t.closed || t.keyframeTimer != nil {
		t.mu.Unlock()
		return // one is already due
	}
	wait := time.Until(t.lastKeyframeRequest.Add(keyframeInterval))
	if wait > 0 {
		t.keyframeTimer = time.AfterFunc(wait, func() {
			t.mu.Lock()
			t.keyframeTimer = nil
			t.lastKeyframeRequest = time.Now()
			closed := t.closed
			t.mu.Unlock()
			if !closed {
				t.sendPLI()
			}
		})
		t.mu.Unlock()
		return
	}
	t.lastKeyframeRequest = time.Now()
	t.mu.Unlock()
	t.sendPLI()
}

func (t *Track) sendPLI() {
	t.stats.keyframeRequests.Add(1)
	if err := t.writeRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: t.ssrc}}); err != nil {
		t.log.Debug("keyframe request failed", zap.Error(err))
	}
}

// addDownTrack starts forwarding to d; it returns false once the track is closed.
func (t *Track) addDownTrack(d *DownTrack) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	old := *t.downs.Load()
	downs := make([]*DownTrack, len(old), len(old)+1)
	copy(downs, old)
	downs = append(downs, d)
	t.downs.Store(&downs)
	return true
}

func (t *Track) removeDownTrack(d *DownTrack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.downs.Load()
	downs := make([]*DownTrack, 0, len(old))
	for _, x := range old {
		if x != d {
			downs = append(downs, x)
		}
	}
	t.downs.Store(&downs)
	if len(downs) < len(old) {
		d.stats.addTo(&t.stats)
	}
}

// close stops new subscriptions and returns the down-tracks that were
// forwarding, for their subscribers to remove.
func (t *Track) close() []*DownTrack {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if t.keyframeTimer != nil {
		t.keyframeTimer.Stop()
		t.keyframeTimer = nil
	}
	downs := *t.downs.Load()
	t.downs.Store(&[]*DownTrack{})
	for _, d := range downs {
		d.stats.addTo(&t.stats)
	}
	return downs
}
