package sfu

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/rtc"
)

// DownTrack is one published Track as one subscriber receives it. It is the
// webrtc.TrackLocal bound to the subscriber's RTPSender: it owns the
// subscriber's SSRC, payload type and sequence/timestamp space, and answers
// the subscriber's RTCP.
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

	// ext backs the outgoing header's extensions so the TWCC interceptor can
	// add its sequence number without allocating. Only the forwarding loop
	// uses it; retransmissions have their own.
	ext [2]rtp.Extension
}

var _ webrtc.TrackLocal = (*DownTrack)(nil)

func newDownTrack(src *Track, subscriber *Participant) *DownTrack {
	return &DownTrack{
		src:        src,
		subscriber: subscriber,
		log:        subscriber.log.With(zap.String("track", src.info.ID)),
		rewriter:   rtc.NewRewriter(uint16(rand.Uint32()), rand.Uint32()),
	}
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
	codec, ok := matchCodec(d.src.cap, ctx.CodecParameters())
	if !ok {
		d.log.Warn("cannot forward track", zap.String("codec", d.src.cap.MimeType), zap.Error(errNoCodec))
		return webrtc.RTPCodecParameters{}, errNoCodec
	}
	d.mu.Lock()
	d.writer, d.ssrc, d.pt = ctx.WriteStream(), uint32(ctx.SSRC()), uint8(codec.PayloadType)
	d.mu.Unlock()
	// Video starts only at a keyframe; ask for one rather than wait for the next.
	d.src.RequestKeyframe()
	return codec, nil
}

// Unbind is called when the sender stops.
func (d *DownTrack) Unbind(webrtc.TrackLocalContext) error {
	d.mu.Lock()
	d.writer = nil
	d.mu.Unlock()
	return nil
}

// writeRTP forwards one packet of the source; it runs on the source's
// forwarding loop. The lock covers only the rewrite, never the write.
func (d *DownTrack) writeRTP(h *rtp.Header, payload []byte, keyframe bool) {
	d.mu.Lock()
	w := d.writer
	if w == nil {
		d.mu.Unlock()
		return
	}
	if !d.rewriter.Started() {
		if d.src.info.Kind == webrtc.RTPCodecTypeVideo && !keyframe {
			d.mu.Unlock()
			d.src.RequestKeyframe()
			return
		}
		d.rewriter.Start(h.SequenceNumber, h.Timestamp, 0)
	}
	sn, ts, ok := d.rewriter.Rewrite(h.SequenceNumber, h.Timestamp)
	out := rtp.Header{
		Version:        2,
		Padding:        h.Padding,
		Marker:         h.Marker,
		PayloadType:    d.pt,
		SequenceNumber: sn,
		Timestamp:      ts,
		SSRC:           d.ssrc,
		Extensions:     d.ext[:0],
	}
	d.mu.Unlock()
	if !ok {
		return
	}
	if n, err := w.WriteRTP(&out, payload); err != nil {
		if !isClosed(err) {
			d.log.Debug("write rtp", zap.Error(err))
		}
	} else {
		d.stats.packetsOut.Add(1)
		d.stats.bytesOut.Add(uint64(n))
	}
}

// readRTCP answers the subscriber's feedback until the sender stops.
func (d *DownTrack) readRTCP() {
	buf := make([]byte, 1500)
	for {
		n, _, err := d.sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				d.src.RequestKeyframe()
			case *rtcp.TransportLayerNack:
				d.stats.nacks.Add(1)
				d.retransmit(p)
			}
		}
	}
}

// retransmit resends the packets a NACK names from the source's cache,
// rewritten exactly as they were first sent.
func (d *DownTrack) retransmit(nack *rtcp.TransportLayerNack) {
	if d.src.cache == nil {
		return
	}
	buf := make([]byte, 1500)
	var h rtp.Header
	var ext [2]rtp.Extension
	for _, pair := range nack.Nacks {
		for _, outSN := range pair.PacketList() {
			d.mu.Lock()
			w := d.writer
			inSN, ok := d.rewriter.Incoming(outSN)
			d.mu.Unlock()
			if w == nil || !ok {
				continue
			}
			n := d.src.cache.Get(inSN, buf)
			if n == 0 {
				continue
			}
			hl, err := h.Unmarshal(buf[:n])
			if err != nil {
				continue
			}
			d.mu.Lock()
			sn, ts, ok := d.rewriter.Rewrite(h.SequenceNumber, h.Timestamp)
			out := rtp.Header{Version: 2, Padding: h.Padding, Marker: h.Marker, PayloadType: d.pt,
				SequenceNumber: sn, Timestamp: ts, SSRC: d.ssrc, Extensions: ext[:0]}
			d.mu.Unlock()
			if !ok {
				continue
			}
			if _, err := w.WriteRTP(&out, buf[hl:n]); err != nil {
				if !isClosed(err) {
					d.log.Debug("retransmit", zap.Error(err))
				}
			} else {
				d.stats.retransmits.Add(1)
			}
		}
	}
}

// matchCodec picks the subscriber's codec for the publisher's: same MIME
// type and, where it changes the bitstream, the same profile and
// packetization.
func matchCodec(want webrtc.RTPCodecCapability, have []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	for _, c := range have {
		if !strings.EqualFold(c.MimeType, want.MimeType) {
			continue
		}
		switch strings.ToLower(want.MimeType) {
		case "video/h264":
			if fmtp(c.SDPFmtpLine, "packetization-mode") != fmtp(want.SDPFmtpLine, "packetization-mode") ||
				!sameH264Profile(fmtp(c.SDPFmtpLine, "profile-level-id"), fmtp(want.SDPFmtpLine, "profile-level-id")) {
				continue
			}
		case "video/vp9":
			if fmtp(c.SDPFmtpLine, "profile-id") != fmtp(want.SDPFmtpLine, "profile-id") {
				continue
			}
		}
		return c, true
	}
	return webrtc.RTPCodecParameters{}, false
}

// sameH264Profile compares profile_idc, the first byte of profile-level-id;
// the level may differ (level-asymmetry-allowed).
func sameH264Profile(a, b string) bool {
	if len(a) < 2 || len(b) < 2 {
		return a == b
	}
	return strings.EqualFold(a[:2], b[:2])
}

func fmtp(line, key string) string {
	for _, kv := range strings.Split(line, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}
