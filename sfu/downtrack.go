package sfu

import (
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/rtc"
)

// allTemporal forwards every temporal layer.
const allTemporal = 3

// DownTrack is one published Track as one subscriber receives it. It is the
// webrtc.TrackLocal bound to the subscriber's RTPSender: it owns the
// subscriber's SSRC, payload type and sequence/timestamp space, picks which
// layer of the track to forward, and answers the subscriber's RTCP.
type DownTrack struct {
	src        *Track
	subscriber *Participant
	sender     *webrtc.RTPSender
	log        *zap.Logger
	stats      counters

	mu       sync.Mutex
	writer   webrtc.TrackLocalWriter // nil while unbound
	ssrc     uint32
	pt       uint8
	rewriter *rtc.Rewriter
	munger   rtc.Munger // the codec's numbering in the payload
	seq      rtc.Sequencer
	// current is the layer being forwarded, target the one wanted (-1:
	// none, the video is paused). A switch happens at a keyframe of target.
	current, target int
	temporal        uint8 // highest temporal layer forwarded
	targetTemporal  uint8 // applied at the next base-layer frame
	lastSent        time.Time
	onChange        func() // told when current changes; set once before bind
	tile            tile   // how the subscriber shows the video

	// Per source layer, because each layer's loop writes concurrently: the
	// outgoing header, the payload copy the munger rewrites,
	// and the header extensions the TWCC interceptor fills in. Kept here so
	// that forwarding a packet allocates nothing.
	hdr     [maxLayers]rtp.Header
	payload [maxLayers][1500]byte
	ext     [maxLayers][2]rtp.Extension
	padHdr  rtp.Header // for writePadding
	padExt  [2]rtp.Extension
}

var _ webrtc.TrackLocal = (*DownTrack)(nil)

func newDownTrack(src *Track, subscriber *Participant) *DownTrack {
	d := &DownTrack{
		src:        src,
		subscriber: subscriber,
		log:        subscriber.log.With(zap.String("track", src.info.ID)),
		rewriter:   rtc.NewRewriter(uint16(rand.Uint32()), rand.Uint32()),
		munger:     rtc.NewMunger(src.codec),
		current:    -1,
		target:     0,
		temporal:   allTemporal,
		tile:       tile{visible: true},
	}
	d.targetTemporal = d.temporal
	if src.info.Kind == webrtc.RTPCodecTypeVideo {
		// Start at the lowest layer: it is cheapest to get a keyframe for and
		// fits any link; the allocator raises it as the estimate allows.
		d.target, d.temporal, d.targetTemporal = 0, allTemporal, allTemporal
	}
	return d
}

// ID is the track id the subscriber sees (a=msid), equal to the published track's.
func (d *DownTrack) ID() string { return d.src.info.ID }

// StreamID is the publisher's participant id, so the client can group a
// participant's audio and video into one MediaStream.
func (d *DownTrack) StreamID() string { return d.src.info.Participant }

// RID is empty: a subscriber receives one layer.
func (d *DownTrack) RID() string { return "" }

// Kind is audio or video.
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.src.info.Kind }

var errNoCodec = errors.New("subscriber does not support the publisher's codec")

// Bind is called by Pion once the subscriber's answer fixed the codec.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec, ok := rtc.MatchCodec(d.src.cap, ctx.CodecParameters())
	if !ok {
		d.log.Warn("cannot forward track", zap.String("codec", d.src.cap.MimeType), zap.Error(errNoCodec))
		return webrtc.RTPCodecParameters{}, errNoCodec
	}
	d.mu.Lock()
	d.writer, d.ssrc, d.pt = ctx.WriteStream(), uint32(ctx.SSRC()), uint8(codec.PayloadType)
	target := d.target
	d.mu.Unlock()
	// Video starts only at a keyframe; ask for one rather than wait for the next.
	d.src.RequestKeyframe(target)
	return codec, nil
}

// Unbind is called when the sender stops.
func (d *DownTrack) Unbind(webrtc.TrackLocalContext) error {
	d.mu.Lock()
	d.writer = nil
	d.mu.Unlock()
	return nil
}

// Layer returns the layer being forwarded (-1 while paused or starting) and
// the highest temporal layer.
func (d *DownTrack) Layer() (current int, temporal int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current, int(d.temporal)
}

// setTarget asks for a layer (-1 pauses the video). Pausing and temporal
// reductions take effect at once; a new spatial layer at its next keyframe.
func (d *DownTrack) setTarget(layer int, temporal uint8) {
	d.mu.Lock()
	changed := false
	if layer < 0 && d.current >= 0 {
		d.current = -1
		changed = true
	}
	d.target = layer
	d.targetTemporal = temporal
	if temporal < d.temporal {
		d.temporal = temporal
	}
	need := layer >= 0 && layer != d.current && d.writer != nil
	notify := d.onChange
	d.mu.Unlock()
	if need {
		d.src.RequestKeyframe(layer)
	}
	if changed && notify != nil {
		notify()
	}
}

// writeRTP forwards one packet of the source; it runs on the forwarding
// loop of the packet's layer. The lock covers only the rewrite, never the
// network write.
func (d *DownTrack) writeRTP(p *packet) {
	h := p.header
	d.mu.Lock()
	w := d.writer
	if w == nil {
		d.mu.Unlock()
		return
	}
	switched := false
	if p.layer != d.current {
		if p.layer != d.target || !(p.info.Keyframe || d.src.info.Kind == webrtc.RTPCodecTypeAudio) {
			wantKeyframe := d.target == p.layer && d.target != d.current
			d.mu.Unlock()
			if wantKeyframe {
				d.src.RequestKeyframe(p.layer)
			}
			return
		}
		// Switch (or start) at this keyframe, a little after the last
		// packet sent so the receiver's jitter buffer sees time move on.
		d.rewriter.Start(h.SequenceNumber, h.Timestamp, d.timestampGap(p.at))
		d.munger.Start(&p.info)
		d.current, d.temporal = p.layer, d.targetTemporal
		d.stats.layerSwitches.Add(1)
		switched = true
	}
	if p.info.HasTID {
		// Raising the temporal layer waits for a base-layer frame: a higher
		// layer frame may reference one that was not forwarded.
		if p.info.TID == 0 && p.info.FrameStart {
			d.temporal = d.targetTemporal
		}
		if p.info.TID > d.temporal {
			d.rewriter.Drop(h.SequenceNumber)
			d.munger.Drop(&p.info)
			d.mu.Unlock()
			return
		}
	}
	sn, ts, ok := d.rewriter.Rewrite(h.SequenceNumber, h.Timestamp)
	if !ok {
		d.mu.Unlock()
		return
	}
	payload, munged := d.munger.Rewrite(&p.info, p.payload, d.payload[p.layer][:])
	d.seq.Push(rtc.SentPacket{OutSN: sn, InSN: h.SequenceNumber, Layer: int8(p.layer), TS: ts, Munged: munged})
	d.lastSent = p.at
	out := &d.hdr[p.layer]
	*out = rtp.Header{
		Version:        2,
		Padding:        p.padding > 0,
		PaddingSize:    p.padding,
		Marker:         h.Marker,
		PayloadType:    d.pt,
		SequenceNumber: sn,
		Timestamp:      ts,
		SSRC:           d.ssrc,
		Extensions:     d.ext[p.layer][:0],
	}
	notify, temporal := d.onChange, d.temporal
	d.mu.Unlock()
	if switched {
		d.log.Debug("layer switch", zap.Int("layer", p.layer), zap.Uint8("temporal", temporal))
		if notify != nil {
			notify()
		}
	}
	if n, err := w.WriteRTP(out, payload); err != nil {
		if !isClosed(err) {
			d.log.Debug("write rtp", zap.Error(err))
		}
	} else {
		d.stats.packetsOut.Add(1)
		d.stats.bytesOut.Add(uint64(n))
	}
}

// timestampGap is the time from the last packet sent to now, when the
// packet that switches arrived, in RTP clock units (at least one tick), so
// a switch keeps time continuous.
func (d *DownTrack) timestampGap(now time.Time) uint32 {
	if d.lastSent.IsZero() {
		return 1
	}
	gap := now.Sub(d.lastSent).Seconds() * float64(d.src.cap.ClockRate)
	return uint32(max(1, min(gap, float64(10*d.src.cap.ClockRate))))
}

// writePadding sends one padding-only packet of size bytes (at most 255),
// used to probe for bandwidth, also while the video is paused; false when
// the track is not bound. Only the allocator's goroutine calls it.
func (d *DownTrack) writePadding(size int) bool {
	size = max(1, min(size, 255))
	d.mu.Lock()
	w := d.writer
	if w == nil {
		d.mu.Unlock()
		return false
	}
	sn, ts := d.rewriter.Insert()
	d.seq.Push(rtc.SentPacket{OutSN: sn, Padding: true, TS: ts})
	out := &d.padHdr
	*out = rtp.Header{Version: 2, Padding: true, PaddingSize: byte(size), PayloadType: d.pt,
		SequenceNumber: sn, Timestamp: ts, SSRC: d.ssrc, Extensions: d.padExt[:0]}
	d.mu.Unlock()
	n, err := w.WriteRTP(out, nil)
	if err == nil {
		d.stats.paddingBytes.Add(uint64(n))
	}
	return err == nil
}

// readRTCP answers the subscriber's feedback until the sender stops.
func (d *DownTrack) readRTCP() {
	buf := make([]byte, 1500)
	for {
		n, _, err := d.sender.Read(buf)
		if err != nil {
			return
		}
		d.handleRTCP(buf[:n])
	}
}

// handleRTCP acts on one RTCP compound from the subscriber: keyframe
// requests go to the publisher (throttled), NACKs are answered from the
// cache. Anything else, or anything malformed, is ignored.
func (d *DownTrack) handleRTCP(b []byte) {
	// Most compounds are TWCC feedback and receiver reports, for the link
	// monitor: parsing them here would only allocate.
	if !rtc.NeedsParse(b) {
		return
	}
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return
	}
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			d.mu.Lock()
			layer := d.current
			d.mu.Unlock()
			d.src.RequestKeyframe(layer)
		case *rtcp.TransportLayerNack:
			d.stats.nacks.Add(1)
			d.retransmit(p)
		}
	}
}

// retransmit resends the packets a NACK names, exactly as first sent: the
// same source packet from its layer's cache, the same rewritten numbers.
func (d *DownTrack) retransmit(nack *rtcp.TransportLayerNack) {
	if d.src.info.Kind != webrtc.RTPCodecTypeVideo {
		return
	}
	buf := make([]byte, 1500)
	var h rtp.Header
	var ext [2]rtp.Extension
	for _, pair := range nack.Nacks {
		for _, outSN := range pair.PacketList() {
			d.mu.Lock()
			w, ssrc, pt := d.writer, d.ssrc, d.pt
			sent, ok := d.seq.Get(outSN)
			d.mu.Unlock()
			if w == nil || !ok || sent.Padding {
				continue
			}
			l := d.src.layer(int(sent.Layer))
			if l == nil || l.cache == nil {
				continue
			}
			n := l.cache.Get(sent.InSN, buf)
			if n == 0 {
				continue
			}
			hl, err := h.Unmarshal(buf[:n])
			if err != nil {
				continue
			}
			payload, pad, ok := stripPadding(&h, buf[hl:n])
			if !ok {
				continue
			}
			d.munger.Restore(payload, sent.Munged)
			out := rtp.Header{Version: 2, Padding: pad > 0, PaddingSize: pad, Marker: h.Marker, PayloadType: pt,
				SequenceNumber: outSN, Timestamp: sent.TS, SSRC: ssrc, Extensions: ext[:0]}
			if _, err := w.WriteRTP(&out, payload); err != nil {
				if !isClosed(err) {
					d.log.Debug("retransmit", zap.Error(err))
				}
			} else {
				d.stats.retransmits.Add(1)
			}
		}
	}
}
