package client

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// Received counts what arrived on one subscribed track. The counters are
// written by the track's reader and may be read at any time.
type Received struct {
	Participant string
	Kind        string
	// Packets counts every packet read (duplicates included, packets
	// discarded by Options.Drop not), Bytes their size with RTP headers.
	Packets   atomic.Int64
	Bytes     atomic.Int64
	Keyframes atomic.Int64
	// Frames counts video packets with the marker bit: frames completed.
	Frames atomic.Int64
	// Dropped counts packets discarded on purpose (Options.Drop).
	Dropped atomic.Int64
	// Padding counts padding-only packets (bandwidth probes), which take
	// sequence numbers but are not counted in Packets or Bytes.
	Padding atomic.Int64
	// FirstAt is when the first packet arrived (unix nanoseconds).
	FirstAt atomic.Int64
	Ended   atomic.Bool
	// Latency is the time from the publisher's send stamp to arrival, in
	// microseconds, of every stamped packet (see putStamp).
	Latency Histogram

	expected   atomic.Int64
	unique     atomic.Int64
	duplicates atomic.Int64
	late       atomic.Int64
	jitter     atomic.Uint64 // float64 bits, seconds
}

// StreamStats is a consistent-enough copy of a Received's counters.
type StreamStats struct {
	Packets, Bytes, Frames, Padding int64
	// Expected is the span of sequence numbers seen, Unique the distinct
	// packets within it; Expected-Unique were lost.
	Expected, Unique, Duplicates int64
	// Late packets arrived after a higher sequence number: reordered, or
	// resent after a NACK.
	Late int64
	// Jitter is the RFC 3550 interarrival jitter.
	Jitter time.Duration
}

// Lost is the number of packets that never arrived (never negative).
func (s StreamStats) Lost() int64 { return max(s.Expected-s.Unique, 0) }

// Stats returns the stream's counters.
func (r *Received) Stats() StreamStats {
	return StreamStats{
		Packets:    r.Packets.Load(),
		Bytes:      r.Bytes.Load(),
		Frames:     r.Frames.Load(),
		Padding:    r.Padding.Load(),
		Expected:   r.expected.Load(),
		Unique:     r.unique.Load(),
		Duplicates: r.duplicates.Load(),
		Late:       r.late.Load(),
		Jitter:     time.Duration(math.Float64frombits(r.jitter.Load()) * 1e9),
	}
}

// receiver is the state of one track's reader; only that goroutine touches it.
type receiver struct {
	r      *Received
	vp8    bool // the only video codec the client judges keyframes of
	video  bool
	seq    seqTracker
	jitter jitterMeter
}

func (c *Client) onTrack(t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	r := &Received{Participant: t.StreamID(), Kind: t.Kind().String()}
	c.mu.Lock()
	c.received[t.ID()] = r
	c.mu.Unlock()
	// Reading the receiver's RTCP hands the sender reports to the report
	// interceptor, so that our receiver reports carry LSR/DLSR as a
	// browser's do.
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := recv.Read(buf); err != nil {
				return
			}
		}
	}()
	codec := t.Codec()
	clockRate := float64(codec.ClockRate)
	if clockRate == 0 {
		clockRate = 90000
	}
	rc := &receiver{
		r:      r,
		vp8:    strings.EqualFold(codec.MimeType, webrtc.MimeTypeVP8),
		video:  t.Kind() == webrtc.RTPCodecTypeVideo,
		jitter: jitterMeter{clockRate: clockRate},
	}
	var rng *rand.Rand
	if c.opts.Drop > 0 {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			r.Ended.Store(true)
			return
		}
		// The interceptors (NACK, reports, TWCC) have seen the packet, so a
		// dropped one is neither asked for again nor reported lost upstream:
		// it is lost only to our own counting.
		if rng != nil && rng.Float64() < c.opts.Drop {
			r.Dropped.Add(1)
			continue
		}
		rc.observe(buf[:n], time.Now().UnixNano())
	}
}

// observe counts one RTP packet that arrived at now (Unix nanoseconds).
func (rc *receiver) observe(p []byte, now int64) {
	r := rc.r
	if len(p) < 12 {
		return
	}
	hl := 12 + 4*int(p[0]&0x0f)
	if p[0]&0x10 != 0 { // header extension
		if len(p) < hl+4 {
			return
		}
		hl += 4 + 4*int(binary.BigEndian.Uint16(p[hl+2:]))
	}
	end := len(p)
	if p[0]&0x20 != 0 && end > hl { // padding
		end -= int(p[end-1])
	}
	if hl > end {
		return
	}
	payload := p[hl:end]
	sn := binary.BigEndian.Uint16(p[2:])
	ts := binary.BigEndian.Uint32(p[4:])

	dup := rc.seq.push(sn)
	r.expected.Store(rc.seq.expected())
	r.unique.Store(rc.seq.unique)
	r.late.Store(rc.seq.late)
	if len(payload) == 0 {
		r.Padding.Add(1)
		return
	}
	if r.Packets.Add(1) == 1 {
		r.FirstAt.Store(now)
	}
	r.Bytes.Add(int64(len(p)))
	if dup {
		r.duplicates.Store(rc.seq.duplicates)
		return // counted once already
	}
	rc.jitter.push(ts, now)
	r.jitter.Store(math.Float64bits(rc.jitter.jitter / rc.jitter.clockRate))
	if sent, ok := readStamp(payload); ok {
		r.Latency.Record(uint64(max(now-sent, 0)) / 1000)
	}
	if rc.video {
		if p[1]&0x80 != 0 {
			r.Frames.Add(1)
		}
		if rc.vp8 && vp8KeyframeStart(payload) {
			r.Keyframes.Add(1)
		}
	}
}

// vp8KeyframeStart reports whether a VP8 RTP payload is the first packet of
// a keyframe: S=1 and partition 0 in the payload descriptor (RFC 7741 4.2),
// then a frame tag with P=0 (RFC 6386 9.1). The client has its own check
// rather than the server's: it is the test oracle for the server's.
func vp8KeyframeStart(p []byte) bool {
	if len(p) == 0 || p[0]&0x10 == 0 || p[0]&0x07 != 0 {
		return false
	}
	n := 1
	if p[0]&0x80 != 0 { // X: an extension byte, then its optional fields
		if len(p) < 2 {
			return false
		}
		x := p[1]
		n = 2
		if x&0x80 != 0 { // I: PictureID, M bit for 15 bits
			if len(p) <= n {
				return false
			}
			if p[n]&0x80 != 0 {
				n++
			}
			n++
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			n++
		}
		if x&0x30 != 0 { // T or K: one byte for TID/Y/KEYIDX
			n++
		}
	}
	return len(p) > n && p[n]&0x01 == 0
}
