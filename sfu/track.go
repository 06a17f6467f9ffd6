package sfu

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/internal/clock"
	"github.com/switchboard-sfu/switchboard/rtc"
)

// keyframeInterval bounds how often a publisher is asked for a keyframe per
// layer: one PLI answers every subscriber that asked in the meantime.
const keyframeInterval = 500 * time.Millisecond

// maxLayers is the number of simulcast layers a track can have; layer 0 is
// the lowest quality. A track without simulcast has layer 0 only.
const maxLayers = 3

// Bytes are counted per temporal layer id, packets without one in the
// bucket unlayered (a 2-bit TID of 3, which no encoder we serve sends,
// counts there too).
const (
	unlayered       = 3
	temporalBuckets = unlayered + 1
)

// Rids the web client gives its simulcast layers, lowest first.
var layerRIDs = [maxLayers]string{"q", "h", "f"}

// nominalBitrate is what a layer is assumed to cost before it has been
// measured (e.g. while dynacast has it switched off at the publisher).
var nominalBitrate = [maxLayers]int{150_000, 500_000, 1_700_000}

// Track is one media track a participant publishes, with one or more
// simulcast layers. Each layer's forwarding loop reads each RTP packet once,
// keeps a copy for retransmissions, and hands it to every DownTrack, which
// forwards the packets of the layer its subscriber should receive.
type Track struct {
	info      TrackInfo // Layers is kept current under mu
	mid       string
	codec     rtc.Codec
	cap       webrtc.RTPCodecCapability
	writeRTCP func([]rtcp.Packet) error
	log       *zap.Logger
	stats     counters
	clock     clock.Clock // for packet arrival times and keyframe request timers

	layers [maxLayers]atomic.Pointer[layer]
	// muted: the publisher muted the track; nothing of it is forwarded or
	// kept for retransmission (setMuted). muteMu orders the changes.
	muted  atomic.Bool
	muteMu sync.Mutex
	// levelExt is the audio level extension's id in the publisher's
	// packets (0: none); levels tallies what they carry (speakers.go).
	levelExt uint8
	levels   audioLevels

	// downs is read by the forwarding loops on every packet without a lock;
	// writers copy it under mu.
	downs atomic.Pointer[[]*DownTrack]
	// taps get every packet after the down-tracks (remote.go); nil for none.
	taps atomic.Pointer[[]Tap]

	mu      sync.Mutex
	closed  bool
	running int // forwarding loops still reading
	// remoteDemand: layers other nodes' subscribers need, by node (remote.go).
	remoteDemand map[string]LayerSet
	// rate measurement, see rates
	rateAt    time.Time
	rateBytes [maxLayers][temporalBuckets]uint64
	rateCache layerRates
}

// layer is one incoming RTP stream of a track (one simulcast encoding).
type layer struct {
	index int
	rid   string
	src   LayerSource
	ssrc  uint32
	cache *rtc.PacketCache // nil for audio: Opus is not retransmitted

	// bytes per temporal layer, for the allocator's bitrate measurements.
	bytes      [temporalBuckets]atomic.Uint64
	lastPacket atomic.Int64 // unix nanoseconds
	width      atomic.Uint32
	height     atomic.Uint32
	temporal   atomic.Bool // the stream carries VP8 temporal layer ids
	fanout     fanout      // used by this layer's forwarding loop only

	mu                  sync.Mutex
	lastKeyframeRequest time.Time
	keyframeTimer       clock.Timer // a merged request waiting for its turn
}

// packet is one incoming RTP packet as the down-tracks see it.
type packet struct {
	layer   int
	header  *rtp.Header
	payload []byte    // the media, without RTP padding
	padding byte      // RTP padding bytes that followed it
	at      time.Time // when it was read: one clock read per packet, not per subscriber
	info    rtc.PayloadInfo
}

func newTrack(info TrackInfo, mid string, codec webrtc.RTPCodecParameters, writeRTCP func([]rtcp.Packet) error, log *zap.Logger) *Track {
	t := &Track{
		info:      info,
		mid:       mid,
		codec:     rtc.CodecOf(codec.MimeType),
		cap:       codec.RTPCodecCapability,
		writeRTCP: writeRTCP,
		log:       log,
		clock:     clock.Real{},
	}
	t.downs.Store(&[]*DownTrack{})
	return t
}

// Info describes the track for signaling.
func (t *Track) Info() TrackInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	info := t.info
	info.Layers = append([]string(nil), t.info.Layers...)
	return info
}

// layerIndex places a rid among the layers: the web client's q/h/f, else
// the first free slot.
func (t *Track) layerIndex(rid string) int {
	if i, ok := RIDLayer(rid); ok {
		return i
	}
	for i := range t.layers {
		if t.layers[i].Load() == nil {
			return i
		}
	}
	return -1
}

// addLayer registers an incoming stream; false when it cannot be placed or
// the track is closed. The caller runs forward on the returned layer.
func (t *Track) addLayer(src LayerSource) (*layer, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := t.layerIndex(src.RID())
	if t.closed || i < 0 || t.layers[i].Load() != nil {
		return nil, false
	}
	l := &layer{index: i, rid: src.RID(), src: src, ssrc: uint32(src.SSRC())}
	if t.info.Kind == webrtc.RTPCodecTypeVideo {
		l.cache = &rtc.PacketCache{}
	}
	t.layers[i].Store(l)
	t.running++
	t.info.Layers = t.info.Layers[:0]
	for j := range t.layers {
		if x := t.layers[j].Load(); x != nil && x.rid != "" {
			t.info.Layers = append(t.info.Layers, x.rid)
		}
	}
	return l, true
}

// RIDLayer is the layer the web client's rids (q, h, f) take; other rids
// take the first free layer, in the order they arrive.
func RIDLayer(rid string) (int, bool) {
	i := slices.Index(layerRIDs[:], rid)
	return i, i >= 0
}

// forward is a layer's forwarding loop. It returns true when it was the
// track's last running loop, i.e. the track has ended.
func (t *Track) forward(l *layer) (last bool) {
	defer func() {
		t.mu.Lock()
		t.running--
		last = t.running == 0
		t.mu.Unlock()
	}()
	var h rtp.Header
	pkt := packet{layer: l.index, header: &h}
	defer l.fanout.stop()
	r := newReadAhead(l.src, t.clock)
	for {
		// One pass over what has arrived, up to maxPass packets: a frame's
		// packets, read while the first was forwarded, leave together.
		// The pass never waits for a packet that has not arrived.
		s, ok := <-r.full
		if !ok {
			return
		}
		l.fanout.open()
		taps := t.taps.Load() // held for the pass, released after it
		if taps != nil {
			for _, tp := range *taps {
				tp.Hold()
			}
		}
		for n := 1; ; n++ {
			t.route(l, r.buf[s][:r.n[s]], r.at[s], &pkt, taps)
			r.free <- s
			if n == maxPass {
				break
			}
			select {
			case s, ok = <-r.full:
			default:
				ok = false
			}
			if !ok {
				break
			}
		}
		l.fanout.close()
		if taps != nil {
			for _, tp := range *taps {
				tp.Release()
			}
		}
	}
}

// maxPass bounds how many packets one pass forwards before what it wrote
// is sent: the first waits while the others are rewritten and encrypted.
// Eight 1,100-byte packets are one GSO send per subscriber.
const maxPass = 8

// readAhead reads a layer's packets on a goroutine of its own into a few
// slots, so that the forwarding loop can see, without blocking, whether
// more have arrived (Pion's TrackRemote cannot say).
type readAhead struct {
	buf  [maxPass + 2][1500]byte
	n    [maxPass + 2]int
	at   [maxPass + 2]time.Time
	full chan int // slots read, in order; closed when the source ends
	free chan int
}

func newReadAhead(src LayerSource, c clock.Clock) *readAhead {
	r := &readAhead{full: make(chan int, maxPass+2), free: make(chan int, maxPass+2)}
	for i := range maxPass + 2 {
		r.free <- i
	}
	go func() {
		defer close(r.full)
		for s := range r.free {
			n, _, err := src.Read(r.buf[s][:])
			if err != nil {
				return
			}
			r.n[s], r.at[s] = n, c.Now()
			r.full <- s
		}
	}()
	return r
}

// route is the per-packet work of the forwarding loop: parse once, cache,
// classify, and hand the packet to every down-track and to taps, the pass's
// (held for it). now is when the packet was read; pkt is the loop's
// reusable packet whose header it fills.
func (t *Track) route(l *layer, raw []byte, now time.Time, pkt *packet, taps *[]Tap) {
	h := pkt.header
	hl, err := h.Unmarshal(raw)
	if err != nil {
		return // not RTP; one bad packet must not end the track
	}
	media, pad, ok := stripPadding(h, raw[hl:])
	if !ok {
		return
	}
	pkt.payload, pkt.padding = media, pad
	t.stats.packetsIn.Add(1)
	t.stats.bytesIn.Add(uint64(len(raw)))
	pkt.at = now
	l.lastPacket.Store(pkt.at.UnixNano())
	if t.muted.Load() {
		return // not even cached: a NACK must not bring it back
	}
	if l.cache != nil {
		l.cache.Store(h.SequenceNumber, raw)
	}
	if t.levelExt != 0 {
		t.levels.add(h, t.levelExt)
	}
	t.codec.Parse(media, &pkt.info)
	bucket := unlayered
	if pkt.info.HasTID {
		bucket = min(int(pkt.info.TID), unlayered)
		l.temporal.Store(true)
	}
	if pkt.info.Sized {
		l.width.Store(uint32(pkt.info.Width))
		l.height.Store(uint32(pkt.info.Height))
	}
	l.bytes[bucket].Add(uint64(len(raw)))
	downs := *t.downs.Load()
	l.fanout.write(pkt, downs)
	if h.SequenceNumber%latencySample == 0 && len(downs) > 0 {
		forwardLatency.Observe(time.Since(pkt.at).Seconds())
	}
	if taps != nil {
		h.PaddingSize = pad
		for _, tp := range *taps {
			tp.WritePacket(l.index, h, media)
		}
	}
}

// stripPadding splits RTP padding (RFC 3550 section 5.1) off a payload; it
// is sent on as Header.PaddingSize, never inside the payload.
func stripPadding(h *rtp.Header, payload []byte) (media []byte, pad byte, ok bool) {
	if !h.Padding {
		return payload, 0, true
	}
	if len(payload) == 0 {
		return nil, 0, false
	}
	pad = payload[len(payload)-1]
	if pad == 0 || int(pad) > len(payload) {
		return nil, 0, false
	}
	return payload[:len(payload)-int(pad)], pad, true
}

// setMuted starts or stops forwarding the track; false if it already was
// so. An unmuted track starts again at a keyframe in every down-track, as
// after a pause, its numbering going on from the last packet sent.
func (t *Track) setMuted(muted bool) bool {
	t.muteMu.Lock()
	defer t.muteMu.Unlock()
	if t.muted.Load() == muted {
		return false
	}
	if !muted {
		// Before the flag clears, so that no packet slips out with the
		// numbering it had before the mute.
		for _, d := range t.downTracks() {
			d.mu.Lock()
			d.current = -1
			d.mu.Unlock()
		}
	}
	t.muted.Store(muted)
	t.mu.Lock()
	t.info.Muted = muted
	t.mu.Unlock()
	return true
}

// requestKeyframes asks for a keyframe on every layer of a video.
func (t *Track) requestKeyframes() {
	for i := range t.layers {
		t.RequestKeyframe(i)
	}
}

// layer returns layer i, or nil.
func (t *Track) layer(i int) *layer {
	if i < 0 || i >= maxLayers {
		return nil
	}
	return t.layers[i].Load()
}

// RequestKeyframe asks the publisher for a keyframe on one layer. Requests
// within keyframeInterval of the last one are merged into one sent when the
// interval ends, so a subscriber that asks just after another still gets
// its keyframe promptly and the publisher is never flooded.
func (t *Track) RequestKeyframe(layer int) {
	l := t.layer(layer)
	if t.info.Kind != webrtc.RTPCodecTypeVideo || l == nil {
		return
	}
	l.mu.Lock()
	if l.keyframeTimer != nil {
		l.mu.Unlock()
		return // one is already due
	}
	now := t.clock.Now()
	wait := l.lastKeyframeRequest.Add(keyframeInterval).Sub(now)
	if wait > 0 {
		l.keyframeTimer = t.clock.AfterFunc(wait, func() {
			l.mu.Lock()
			l.keyframeTimer = nil
			l.lastKeyframeRequest = t.clock.Now()
			l.mu.Unlock()
			if !t.isClosed() {
				t.sendPLI(l)
			}
		})
		l.mu.Unlock()
		return
	}
	l.lastKeyframeRequest = now
	l.mu.Unlock()
	t.sendPLI(l)
}

func (t *Track) sendPLI(l *layer) {
	t.stats.keyframeRequests.Add(1)
	t.log.Debug("keyframe request", zap.String("rid", l.rid))
	if err := t.writeRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: l.ssrc}}); err != nil {
		t.log.Debug("keyframe request failed", zap.Error(err))
	}
}

func (t *Track) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
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

// downTracks returns the current subscribers' down-tracks.
func (t *Track) downTracks() []*DownTrack { return *t.downs.Load() }

// close stops new subscriptions and returns the down-tracks that were
// forwarding, for their subscribers to remove.
func (t *Track) close() []*DownTrack {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for i := range t.layers {
		if l := t.layers[i].Load(); l != nil {
			l.mu.Lock()
			if l.keyframeTimer != nil {
				l.keyframeTimer.Stop()
				l.keyframeTimer = nil
			}
			l.mu.Unlock()
		}
	}
	downs := *t.downs.Load()
	t.downs.Store(&[]*DownTrack{})
	for _, d := range downs {
		d.stats.addTo(&t.stats)
	}
	return downs
}
