package sfu

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/internal/clock"
	"github.com/switchboard-sfu/switchboard/rtc"
)

// The forwarding tests drive Track.route directly, the way a layer's
// forwarding loop does, and watch what one subscriber's DownTrack writes.

const (
	pubPT   = 96         // the publisher's VP8 payload type
	subPT   = 100        // the subscriber's, deliberately different
	subSSRC = 0x5ab5cafe // the subscriber's SSRC

	srtpPoolBuffer = 1492 // pion/srtp's pooled write buffer
)

var vp8Codec = webrtc.RTPCodecParameters{
	RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
	PayloadType:        pubPT,
}

// written is one packet as the subscriber's write stream got it, read back
// from what pion would put on the wire, so that it does not matter whether
// the down-track passes RTP padding inside the payload or as
// Header.PaddingSize.
type written struct {
	hdr     rtp.Header // Extensions and CSRC cleared
	payload []byte     // padding included
	wire    []byte     // the whole packet (before SRTP)
}

// media is the payload without RTP padding.
func (w written) media() []byte {
	if !w.hdr.Padding || len(w.payload) == 0 {
		return w.payload
	}
	pad := int(w.payload[len(w.payload)-1])
	if pad > len(w.payload) {
		return nil
	}
	return w.payload[:len(w.payload)-pad]
}

// probe reports whether the packet is padding only (writePadding's).
func (w written) probe() bool { return w.hdr.Padding && len(w.media()) == 0 }

// key identifies the source packet: every test payload ends with its layer
// and incoming sequence number.
func (w written) key() pktKey {
	m := w.media()
	if len(m) < 3 {
		return pktKey{layer: -1}
	}
	return pktKey{layer: int(m[len(m)-3]), sn: uint16(m[len(m)-2])<<8 | uint16(m[len(m)-1])}
}

func (w written) vp8() rtc.VP8Descriptor {
	d, _ := rtc.ParseVP8(w.media())
	return d
}

func (w written) String() string {
	k := w.key()
	d := w.vp8()
	return fmt.Sprintf("sn=%d ts=%d from=%d/%d pic=%d tl0=%d tid=%d start=%v", w.hdr.SequenceNumber,
		w.hdr.Timestamp, k.layer, k.sn, d.PictureID, d.TL0PICIDX, d.TID, d.Start)
}

type pktKey struct {
	layer int
	sn    uint16
}

// recWriter is the subscriber's write stream. The payload buffer passed to
// it is reused by the down-track, so everything is copied.
type recWriter struct {
	mu   sync.Mutex
	pkts []written
	errs []string
}

func (w *recWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	wire, err := marshalLikeSRTP(h, payload)
	rec := written{wire: wire}
	if err == nil {
		var n int
		if n, err = rec.hdr.Unmarshal(wire); err == nil {
			rec.payload = wire[n:]
			rec.hdr.Extensions, rec.hdr.CSRC = nil, nil
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.errs = append(w.errs, fmt.Sprintf("packet sn=%d: %v", h.SequenceNumber, err))
		return 0, err
	}
	w.pkts = append(w.pkts, rec)
	return len(wire), nil
}

func (w *recWriter) Write(b []byte) (int, error) {
	rec := written{wire: bytes.Clone(b)}
	n, err := rec.hdr.Unmarshal(rec.wire)
	if err != nil {
		return 0, err
	}
	rec.payload = rec.wire[n:]
	rec.hdr.Extensions, rec.hdr.CSRC = nil, nil
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pkts = append(w.pkts, rec)
	return len(b), nil
}

func (w *recWriter) all() []written {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]written(nil), w.pkts...)
}

func (w *recWriter) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pkts = nil
}

// marshalLikeSRTP serializes a packet the way pion/srtp's WriteRTP does
// (rtp.MarshalPacketTo into a pooled 1492-byte buffer), so a header that
// only breaks on the real write path breaks here too.
func marshalLikeSRTP(h *rtp.Header, payload []byte) (wire []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("rtp.MarshalPacketTo panicked (Padding=%v PaddingSize=%d, %d payload bytes): %v",
				h.Padding, h.PaddingSize, len(payload), r)
		}
	}()
	buf := make([]byte, srtpPoolBuffer)
	if _, size := rtp.HeaderAndPacketMarshalSize(h, payload); len(buf) < size+20 { //nolint:staticcheck // what srtp calls
		buf = make([]byte, size+20)
	}
	n, err := rtp.MarshalPacketTo(buf, h, payload) //nolint:staticcheck // what srtp calls
	if err != nil {
		return nil, err
	}
	return bytes.Clone(buf[:n]), nil
}

// pliLog records the keyframe requests a track sends its publisher; the
// merged ones arrive from a timer goroutine.
type pliLog struct {
	mu    sync.Mutex
	ssrcs []uint32
}

func (l *pliLog) write(pkts []rtcp.Packet) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range pkts {
		if pli, ok := p.(*rtcp.PictureLossIndication); ok {
			l.ssrcs = append(l.ssrcs, pli.MediaSSRC)
		}
	}
	return nil
}

func (l *pliLog) count(ssrc uint32) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.ssrcs {
		if s == ssrc {
			n++
		}
	}
	return n
}

// bindCtx is what Pion hands a TrackLocal when the subscriber's answer fixed
// the codec.
type bindCtx struct {
	w     webrtc.TrackLocalWriter
	ssrc  webrtc.SSRC
	codec webrtc.RTPCodecParameters // default vp8Codec
}

func (c bindCtx) CodecParameters() []webrtc.RTPCodecParameters {
	p := vp8Codec
	if c.codec.MimeType != "" {
		p = c.codec
	}
	p.PayloadType = subPT
	return []webrtc.RTPCodecParameters{p}
}
func (bindCtx) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (c bindCtx) SSRC() webrtc.SSRC                                    { return c.ssrc }
func (bindCtx) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (bindCtx) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (c bindCtx) WriteStream() webrtc.TrackLocalWriter                 { return c.w }
func (bindCtx) ID() string                                             { return "bind" }
func (bindCtx) RTCPReader() interceptor.RTCPReader                     { return nil }

// fwd is one VP8 track with its layers, one subscriber's down-track and the
// publisher side that feeds them.
type fwd struct {
	t     testing.TB
	track *Track
	d     *DownTrack
	w     *recWriter
	plis  *pliLog
	clock *clock.Fake // the track's; packets arrive at its time
	src   [maxLayers]*vp8Source
	// Reused across packets like the forwarding loop's own, so that a
	// down-track keeping a reference past route would see it overwritten.
	pkt  [maxLayers]packet
	hdr  [maxLayers]rtp.Header
	buf  [maxLayers][1500]byte
	sent map[pktKey]inPkt
	at   map[pktKey]time.Time // when each packet arrived, to check the timestamp gap at a switch
}

type fwdConfig struct {
	layers  int
	bind    bool   // through DownTrack.Bind, else the writer is set directly
	firstSN uint16 // the subscriber's first outgoing sequence number
	firstTS uint32
	codec   webrtc.RTPCodecParameters // default vp8Codec
}

func newFwd(tb testing.TB, cfg fwdConfig) *fwd {
	tb.Helper()
	f := &fwd{t: tb, w: &recWriter{}, plis: &pliLog{}, clock: clock.NewFake(time.Unix(1_700_000_000, 0)),
		sent: map[pktKey]inPkt{}, at: map[pktKey]time.Time{}}
	info := TrackInfo{ID: "t", Participant: "p", Kind: webrtc.RTPCodecTypeVideo, Codec: webrtc.MimeTypeVP8}
	codec := vp8Codec
	if cfg.codec.MimeType != "" {
		codec = cfg.codec
		info.Codec = codec.MimeType
	}
	f.track = newTrack(info, "1", codec, f.plis.write, zap.NewNop())
	f.track.clock = f.clock
	for i := range cfg.layers {
		l := &layer{index: i, rid: layerRIDs[i], ssrc: layerSSRC(i), cache: &rtc.PacketCache{}}
		f.track.layers[i].Store(l)
		f.track.info.Layers = append(f.track.info.Layers, l.rid)
		f.pkt[i] = packet{layer: i, header: &f.hdr[i]}
		f.src[i] = &vp8Source{layer: i, ssrc: l.ssrc, width: uint16(320 << i), height: uint16(180 << i), size: 120}
	}
	f.d = newDownTrack(f.track, &Participant{log: zap.NewNop()})
	f.d.rewriter = rtc.NewRewriter(cfg.firstSN, cfg.firstTS)
	if cfg.bind {
		codec, err := f.d.Bind(bindCtx{w: f.w, ssrc: subSSRC, codec: cfg.codec})
		if err != nil || codec.PayloadType != subPT {
			tb.Fatalf("Bind = %v, %v", codec.PayloadType, err)
		}
	} else {
		f.d.writer, f.d.ssrc, f.d.pt = f.w, subSSRC, subPT
	}
	if !f.track.addDownTrack(f.d) {
		tb.Fatal("addDownTrack refused")
	}
	tb.Cleanup(func() {
		// close stops the merged keyframe requests' timers.
		f.track.close()
		f.w.mu.Lock()
		defer f.w.mu.Unlock()
		for _, e := range f.w.errs {
			tb.Errorf("write path: %s", e)
		}
	})
	return f
}

func layerSSRC(i int) uint32 { return 0x1000_0000 + uint32(i) }

func (f *fwd) layer(i int) *layer { return f.track.layers[i].Load() }

// send routes packets in the given order.
func (f *fwd) send(pkts ...inPkt) {
	for _, p := range pkts {
		k := pktKey{p.layer, p.sn}
		if _, dup := f.sent[k]; !dup {
			f.sent[k] = p
		}
		n := copy(f.buf[p.layer][:], p.raw)
		f.at[k] = f.clock.Now()
		f.track.route(f.layer(p.layer), f.buf[p.layer][:n], f.at[k], &f.pkt[p.layer], nil)
	}
}

// frames sends count frames of one layer with the L1T3 pattern 0,2,1,2,
// the first a keyframe if key. A keyframe restarts the pattern, as encoders do.
func (f *fwd) frames(layer, count, perFrame int, key bool) []inPkt {
	var all []inPkt
	for i := range count {
		s := f.src[layer]
		if key && i == 0 {
			s.frames = 0
		}
		pkts := s.frame(key && i == 0, l1t3[s.frames%4], perFrame)
		f.send(pkts...)
		all = append(all, pkts...)
	}
	return all
}

var l1t3 = [4]uint8{0, 2, 1, 2}

// inPkt is one packet a publisher sent, with the fields it was built from.
type inPkt struct {
	raw                  []byte
	hdr                  rtp.Header
	payload              []byte // without RTP padding
	layer                int
	sn                   uint16
	ts                   uint32
	pic                  uint16
	tl0, tid, keyIdx     uint8
	start, key, lastPart bool
}

func (p inPkt) key2() pktKey { return pktKey{p.layer, p.sn} }

// withPadding returns p with n bytes of RTP padding.
func (p inPkt) withPadding(n byte) inPkt {
	pkt := rtp.Packet{Header: p.hdr, Payload: p.payload}
	pkt.Header.Padding, pkt.Header.PaddingSize = n > 0, n
	raw, err := pkt.Marshal()
	if err != nil {
		panic(err)
	}
	p.raw, p.hdr = raw, pkt.Header
	return p
}

// vp8Source is a simulcast encoding: its own SSRC, sequence numbers,
// timestamps, PictureIDs (15-bit), TL0PICIDX and KEYIDX.
type vp8Source struct {
	layer         int
	ssrc          uint32
	sn            uint16
	ts            uint32
	pic           uint16
	tl0, keyIdx   uint8
	width, height uint16
	size          int // payload bytes per packet
	frames        int
}

// frame builds the next frame as n packets.
func (s *vp8Source) frame(key bool, tid uint8, n int) []inPkt {
	if key {
		s.keyIdx = (s.keyIdx + 1) & 0x1f
	}
	if tid == 0 {
		s.tl0++ // TL0PICIDX counts base-layer frames
	}
	pkts := make([]inPkt, n)
	for i := range n {
		p := inPkt{layer: s.layer, sn: s.sn, ts: s.ts, pic: s.pic, tl0: s.tl0, tid: tid, keyIdx: s.keyIdx,
			start: i == 0, key: key && i == 0, lastPart: i == n-1}
		p.payload = s.payload(p)
		p.hdr = rtp.Header{Version: 2, Marker: p.lastPart, PayloadType: pubPT, SequenceNumber: s.sn,
			Timestamp: s.ts, SSRC: s.ssrc}
		raw, err := (&rtp.Packet{Header: p.hdr, Payload: p.payload}).Marshal()
		if err != nil {
			panic(err)
		}
		p.raw = raw
		pkts[i] = p
		s.sn++
	}
	s.pic = (s.pic + 1) & 0x7fff
	s.ts += 3000
	s.frames++
	return pkts
}

// payload is a VP8 payload descriptor with every optional field (15-bit
// PictureID, TL0PICIDX, TID/Y/KEYIDX), the frame header on a frame's first
// packet, filler, and the packet's layer and sequence number as a tag.
func (s *vp8Source) payload(p inPkt) []byte {
	b := []byte{0x80, 0xf0, 0x80 | byte(p.pic>>8), byte(p.pic), p.tl0, p.tid<<6 | p.keyIdx&0x1f}
	if p.start {
		b[0] |= 0x10 // S=1, PID=0
		if p.key {
			// frame tag with P=0, start code, 14-bit width and height (RFC 6386 9.1)
			b = append(b, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a,
				byte(s.width), byte(s.width>>8), byte(s.height), byte(s.height>>8))
		} else {
			b = append(b, 0x11, 0x02, 0x00)
		}
	}
	for len(b) < s.size-3 {
		b = append(b, byte(len(b)*7+s.layer))
	}
	return append(b, byte(p.layer), byte(p.sn>>8), byte(p.sn))
}

// streamCheck is what must hold over a run of forwarded packets.
type streamCheck struct {
	// restarts are the indexes in the output where a new source starts (a
	// layer switch or a resume): the timestamp moves on by at least one
	// tick instead of by the source's own spacing.
	restarts map[int]bool
}

// check verifies that outs is one continuous stream in the subscriber's
// SSRC, payload type, sequence number and VP8 picture numbering.
func (f *fwd) check(outs []written, c streamCheck) {
	f.t.Helper()
	var prev *written
	var prevIn inPkt
	for i := range outs {
		o := &outs[i]
		if o.hdr.SSRC != subSSRC || o.hdr.PayloadType != subPT || o.hdr.Version != 2 {
			f.t.Errorf("out[%d] %v: ssrc=%#x pt=%d version=%d, want the subscriber's %#x/%d", i, o,
				o.hdr.SSRC, o.hdr.PayloadType, o.hdr.Version, uint32(subSSRC), subPT)
		}
		if i > 0 && o.hdr.SequenceNumber != outs[i-1].hdr.SequenceNumber+1 {
			f.t.Errorf("out[%d] %v: sequence number follows %d", i, o, outs[i-1].hdr.SequenceNumber)
		}
		if o.probe() {
			if i > 0 && o.hdr.Timestamp != outs[i-1].hdr.Timestamp {
				f.t.Errorf("out[%d]: padding timestamp %d, want the last one %d", i, o.hdr.Timestamp,
					outs[i-1].hdr.Timestamp)
			}
			continue
		}
		in, ok := f.sent[o.key()]
		if !ok {
			f.t.Errorf("out[%d] %v: not a packet that was sent", i, o)
			continue
		}
		if m := o.media(); len(m) != len(in.payload) || !bytes.Equal(m[6:], in.payload[6:]) ||
			m[0] != in.payload[0] || m[1] != in.payload[1] || m[5]&0xe0 != in.payload[5]&0xe0 ||
			o.hdr.Marker != in.hdr.Marker {
			f.t.Errorf("out[%d] %v: payload or marker changed beyond the descriptor's numbers", i, o)
		}
		d := o.vp8()
		if d.TID != in.tid || d.Start != in.start || d.Keyframe != in.key {
			f.t.Errorf("out[%d] %v: descriptor tid=%d start=%v key=%v, sent %d/%v/%v", i, o, d.TID, d.Start,
				d.Keyframe, in.tid, in.start, in.key)
		}
		if prev != nil {
			pd := prev.vp8()
			wantPic, wantTL0, wantKey := pd.PictureID, pd.TL0PICIDX, pd.KeyIdx
			if d.Start {
				wantPic = (wantPic + 1) & 0x7fff
				if d.TID == 0 {
					wantTL0++
				}
			}
			if d.Keyframe {
				wantKey = (wantKey + 1) & 0x1f
			}
			if d.PictureID != wantPic || d.TL0PICIDX != wantTL0 || d.KeyIdx != wantKey {
				f.t.Errorf("out[%d] %v: pic/tl0/keyidx %d/%d/%d after %d/%d/%d, want %d/%d/%d", i, o,
					d.PictureID, d.TL0PICIDX, d.KeyIdx, pd.PictureID, pd.TL0PICIDX, pd.KeyIdx,
					wantPic, wantTL0, wantKey)
			}
			gap := o.hdr.Timestamp - prev.hdr.Timestamp
			if c.restarts[i] {
				if int32(gap) < 1 {
					f.t.Errorf("out[%d] %v: timestamp %d does not move on from %d", i, o, o.hdr.Timestamp,
						prev.hdr.Timestamp)
				}
			} else if want := in.ts - prevIn.ts; gap != want {
				f.t.Errorf("out[%d] %v: timestamp step %d, the source's is %d", i, o, gap, want)
			}
		}
		prev, prevIn = o, in
	}
}

// tsGapBounds is the range of timestampGap for a switch at cur after the
// packet prev was sent: the time between their arrivals in 90 kHz ticks
// (at least 1), give or take a tick of rounding.
func (f *fwd) tsGapBounds(prev, cur pktKey) (lo, hi uint32) {
	ticks := f.at[cur].Sub(f.at[prev]) * 90000 / time.Second
	return uint32(max(1, ticks-1)), uint32(max(1, ticks+1))
}

// keyframeRequestDue moves time on to when a keyframe request merged into
// the last one is sent.
func (f *fwd) keyframeRequestDue() { f.clock.Advance(keyframeInterval) }
