package sfu

import (
	"bytes"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// What a down-track sends besides forwarded media: retransmissions from
// the cache, probe padding, and nothing while paused.

func TestRetransmit(t *testing.T) {
	f := newSimulcast(t, 0)
	_, switches := switchScenario(f)
	outs := f.w.all()
	last := len(outs) - 1
	up, down := switches[0], switches[1]

	resend := func(sns ...uint16) map[uint16][]written {
		f.w.reset()
		f.d.retransmit(&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: subSSRC,
			Nacks: rtcp.NackPairsFromSequenceNumbers(sns)})
		got := map[uint16][]written{}
		for _, w := range f.w.all() {
			got[w.hdr.SequenceNumber] = append(got[w.hdr.SequenceNumber], w)
		}
		return got
	}
	same := func(a, b written) bool {
		return a.hdr.SequenceNumber == b.hdr.SequenceNumber && a.hdr.Timestamp == b.hdr.Timestamp &&
			a.hdr.SSRC == b.hdr.SSRC && a.hdr.PayloadType == b.hdr.PayloadType && a.hdr.Marker == b.hdr.Marker &&
			a.hdr.Padding == b.hdr.Padding && bytes.Equal(a.payload, b.payload) && bytes.Equal(a.wire, b.wire)
	}

	t.Run("before, at and after the switches", func(t *testing.T) {
		idx := []int{0, 1, up - 2, up - 1, up, up + 1, down - 1, down, down + 3, last}
		var sns []uint16
		for _, i := range idx {
			sns = append(sns, outs[i].hdr.SequenceNumber)
		}
		got := resend(sns...)
		for _, i := range idx {
			o := outs[i]
			r := got[o.hdr.SequenceNumber]
			if len(r) != 1 {
				t.Errorf("out[%d] %v: resent %d times", i, o, len(r))
				continue
			}
			if !same(r[0], o) {
				t.Errorf("out[%d] resent as %v\nfirst sent as  %v", i, r[0], o)
			}
		}
		if n := len(f.w.all()); n != len(idx) {
			t.Errorf("%d packets resent for %d NACKed", n, len(idx))
		}
	})
	t.Run("never sent", func(t *testing.T) {
		first, end := outs[0].hdr.SequenceNumber, outs[last].hdr.SequenceNumber
		if got := resend(first-1, first-300, end+1, end+5); len(got) != 0 {
			t.Errorf("resent %d packets that were never sent", len(got))
		}
	})
	t.Run("evicted from the layer's cache", func(t *testing.T) {
		// q moves on by more than its cache holds; h, not forwarded since,
		// keeps its packets.
		f.frames(0, 300, 2, false)
		q, h := outs[0], outs[up]
		got := resend(q.hdr.SequenceNumber, h.hdr.SequenceNumber)
		if len(got[q.hdr.SequenceNumber]) != 0 {
			t.Errorf("resent q's packet %v after the cache dropped it", q)
		}
		if r := got[h.hdr.SequenceNumber]; len(r) != 1 || !same(r[0], h) {
			t.Errorf("h's packet %v not resent as first sent", h)
		}
	})
}

func TestPadding(t *testing.T) {
	tests := []struct {
		name     string
		run      func(f *fwd) (size int, ok bool) // size: the probe's expected payload
		wantSent bool
	}{
		{"between media packets", func(f *fwd) (int, bool) {
			f.frames(0, 3, 2, true)
			ok := f.d.writePadding(100)
			f.frames(0, 2, 2, false)
			return 100, ok
		}, true},
		// Probing must work while nothing flows yet (every video paused), so
		// padding is sent as soon as the track is bound; the first media
		// packet then follows it.
		{"before the first keyframe", func(f *fwd) (int, bool) {
			f.frames(0, 1, 2, false)
			ok := f.d.writePadding(100)
			f.frames(0, 1, 2, true)
			return 100, ok
		}, true},
		{"larger than one packet can carry", func(f *fwd) (int, bool) {
			f.frames(0, 1, 2, true)
			ok := f.d.writePadding(1000)
			f.frames(0, 1, 2, false)
			return 255, ok
		}, true},
		{"empty", func(f *fwd) (int, bool) {
			f.frames(0, 1, 2, true)
			ok := f.d.writePadding(0)
			f.frames(0, 1, 2, false)
			return 1, ok
		}, true},
		{"a late packet keeps the number kept for it", func(f *fwd) (int, bool) {
			f.frames(0, 1, 2, true)
			pkts := f.src[0].frame(false, 2, 3)
			f.send(pkts[0], pkts[2])
			ok := f.d.writePadding(100)
			f.send(pkts[1])
			f.frames(0, 1, 2, false)
			return 100, ok
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFwd(t, fwdConfig{layers: 1, bind: true, firstSN: 65520, firstTS: 5000})
			size, ok := tc.run(f)
			if ok != tc.wantSent {
				t.Fatalf("writePadding = %v, want %v", ok, tc.wantSent)
			}
			outs := f.w.all()
			var probes []written
			for _, o := range outs {
				if o.probe() {
					probes = append(probes, o)
				}
			}
			if !tc.wantSent {
				if len(probes) != 0 {
					t.Errorf("padding written: %v", probes)
				}
				return
			}
			if len(probes) != 1 {
				t.Fatalf("%d padding packets written, want 1", len(probes))
			}
			p := probes[0]
			if len(p.payload) != size || p.payload[size-1] != byte(size) || p.hdr.Marker ||
				!bytes.Equal(p.payload[:size-1], make([]byte, size-1)) {
				t.Errorf("padding payload %d bytes, last %d, marker %v; want %d zero bytes ending in %d",
					len(p.payload), p.payload[len(p.payload)-1], p.hdr.Marker, size, size)
			}
			var wire rtp.Packet
			if err := wire.Unmarshal(p.wire); err != nil || !wire.Padding || int(wire.PaddingSize) != size ||
				len(wire.Payload) != 0 {
				t.Errorf("padding on the wire: %v padding=%v size=%d payload=%d", err, wire.Padding,
					wire.PaddingSize, len(wire.Payload))
			}
			// In sequence number order the stream is continuous around the
			// probe, which carries the timestamp before it.
			slices.SortFunc(outs, func(a, b written) int { return int(int16(a.hdr.SequenceNumber - b.hdr.SequenceNumber)) })
			f.check(outs, streamCheck{})
		})
	}
}

func TestPause(t *testing.T) {
	for _, resumeAt := range []int{0, 1} {
		t.Run([]string{"resume on q", "resume on h"}[resumeAt], func(t *testing.T) {
			f := newFwd(t, fwdConfig{layers: 2, bind: true, firstSN: 65500, firstTS: 1})
			var notified atomic.Int32
			f.d.onChange = func() { notified.Add(1) }
			want := f.frames(0, 4, 2, true)
			f.frames(1, 4, 2, true)

			f.d.setTarget(-1, allTemporal)
			if cur, _ := f.d.Layer(); cur != -1 {
				t.Errorf("Layer() = %d right after pausing", cur)
			}
			if n := notified.Load(); n != 2 {
				t.Errorf("onChange called %d times by start and pause, want 2", n)
			}
			f.frames(0, 3, 2, true) // even a keyframe
			f.frames(1, 3, 2, true)
			if n := len(f.w.all()); n != len(want) {
				t.Fatalf("%d packets forwarded while paused", n-len(want))
			}

			pliBefore := f.plis.count(layerSSRC(resumeAt))
			f.d.setTarget(resumeAt, allTemporal)
			f.keyframeRequestDue()
			if f.plis.count(layerSSRC(resumeAt)) < pliBefore+1 {
				t.Errorf("no PLI for layer %d on resume", resumeAt)
			}
			f.frames(resumeAt, 2, 2, false)
			f.clock.Advance(10 * time.Millisecond)
			resume := len(want)
			want = append(want, f.frames(resumeAt, 4, 2, true)...)

			outs := f.w.all()
			if got, want := outKeys(outs), keysOf(want); !slices.Equal(got, want) {
				t.Fatalf("forwarded %v\nwant       %v", got, want)
			}
			f.check(outs, streamCheck{restarts: map[int]bool{resume: true}})
			gap := outs[resume].hdr.Timestamp - outs[resume-1].hdr.Timestamp
			if lo, hi := f.tsGapBounds(outs[resume-1].key(), outs[resume].key()); gap < lo || gap > hi {
				t.Errorf("timestamp gap over the pause %d ticks, wall time says %d..%d", gap, lo, hi)
			}
		})
	}
}
