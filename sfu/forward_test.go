package sfu

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

func keysOf(pkts []inPkt) []pktKey {
	keys := make([]pktKey, len(pkts))
	for i, p := range pkts {
		keys[i] = p.key2()
	}
	return keys
}

func outKeys(outs []written) []pktKey {
	keys := make([]pktKey, len(outs))
	for i, o := range outs {
		keys[i] = o.key()
	}
	return keys
}

func TestForwardStart(t *testing.T) {
	tests := []struct {
		name   string
		layers int
		bind   bool
		target int
		// run sends the publisher's packets and returns those that must be
		// forwarded, in order.
		run func(f *fwd) []inPkt
	}{
		{
			name: "bound: waits for the keyframe of q", layers: 3, bind: true,
			run: func(f *fwd) []inPkt {
				f.frames(0, 3, 2, false)
				f.frames(1, 1, 2, true)
				return f.frames(0, 5, 2, true)
			},
		},
		{
			// Without Bind's own request the first interframe must ask.
			name: "writer set directly: the first interframe asks", layers: 1,
			run: func(f *fwd) []inPkt {
				if n := f.plis.count(layerSSRC(0)); n != 0 {
					f.t.Errorf("%d PLIs before any packet", n)
				}
				f.frames(0, 1, 2, false)
				return f.frames(0, 4, 3, true)
			},
		},
		{
			name: "target h: keyframes of q are no start", layers: 2, target: 1,
			run: func(f *fwd) []inPkt {
				f.frames(0, 2, 2, true)
				f.frames(1, 2, 2, false)
				f.frames(0, 1, 2, true)
				return f.frames(1, 4, 2, true)
			},
		},
		{
			// The first packet seen is mid-keyframe: its decoder state is missing.
			name: "keyframe tail without its first packet", layers: 1, bind: true,
			run: func(f *fwd) []inPkt {
				key := f.src[0].frame(true, 0, 3)
				f.send(key[1:]...)
				f.frames(0, 1, 2, false)
				return f.frames(0, 3, 2, true)
			},
		},
		{
			name: "keyframe with RTP padding", layers: 1, bind: true,
			run: func(f *fwd) []inPkt {
				f.frames(0, 1, 1, false)
				key := f.src[0].frame(true, 0, 2)
				key[0] = key[0].withPadding(33)
				f.send(key...)
				return append(key, f.frames(0, 2, 1, false)...)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFwd(t, fwdConfig{layers: tc.layers, bind: tc.bind, firstSN: 65534, firstTS: 0xffffff00})
			target := f.layer(tc.target)
			if tc.target != 0 {
				f.d.setTarget(tc.target, allTemporal)
			}
			if tc.bind || tc.target != 0 {
				// Bind (or the new target) asks for a keyframe before any packet arrives.
				if n := f.plis.count(target.ssrc); n != 1 {
					t.Errorf("%d PLIs for the target layer before any packet, want 1", n)
				}
			}
			want := tc.run(f)
			if n := f.plis.count(target.ssrc); n == 0 {
				t.Errorf("no PLI for the target layer's SSRC %#x (got %#x)", target.ssrc, f.plis.ssrcs)
			}
			for i := range tc.layers {
				if i != tc.target && f.plis.count(layerSSRC(i)) != 0 {
					t.Errorf("PLI for layer %d, which is not the target", i)
				}
			}
			outs := f.w.all()
			if got, want := outKeys(outs), keysOf(want); !slices.Equal(got, want) {
				t.Fatalf("forwarded %v\nwant       %v", got, want)
			}
			if !outs[0].vp8().Keyframe {
				t.Errorf("first packet forwarded is not a keyframe start: %v", outs[0])
			}
			if outs[0].hdr.SequenceNumber != 65534 || outs[0].hdr.Timestamp != 0xffffff00 {
				t.Errorf("first packet sn=%d ts=%d, want the rewriter's first 65534/%d", outs[0].hdr.SequenceNumber,
					outs[0].hdr.Timestamp, uint32(0xffffff00))
			}
			f.check(outs, streamCheck{})
			if cur, tmp := f.d.Layer(); cur != tc.target || tmp != allTemporal {
				t.Errorf("Layer() = %d, %d; want %d, %d", cur, tmp, tc.target, allTemporal)
			}
			if w, h := target.width.Load(), target.height.Load(); w != uint32(f.src[tc.target].width) ||
				h != uint32(f.src[tc.target].height) {
				t.Errorf("layer size %dx%d, the keyframe says %dx%d", w, h, f.src[tc.target].width,
					f.src[tc.target].height)
			}
		})
	}
}

func TestForwardNothingBeforeBind(t *testing.T) {
	f := newFwd(t, fwdConfig{layers: 1})
	f.d.writer = nil
	f.frames(0, 3, 2, true)
	if n := len(f.w.all()); n != 0 {
		t.Errorf("%d packets written without a writer", n)
	}
	if f.d.writePadding(100) {
		t.Error("writePadding succeeded without a writer")
	}
}

// switchScenario forwards q, switches up to h and back down to q with both
// layers flowing, and returns what must have been forwarded, in order, and
// the output indexes where each switch happened.
func switchScenario(f *fwd) (want []inPkt, switches []int) {
	t := f.t
	step := func(layer int, key, forwarded bool) {
		pkts := f.frames(layer, 1, 2, key)
		if forwarded {
			want = append(want, pkts...)
		}
	}
	step(0, true, true)
	step(1, true, false)
	for range 6 {
		step(0, false, true)
		step(1, false, false)
	}
	for _, sw := range []struct{ from, to int }{{0, 1}, {1, 0}} {
		before := f.plis.count(layerSSRC(sw.to))
		f.d.setTarget(sw.to, allTemporal)
		f.keyframeRequestDue()
		if f.plis.count(layerSSRC(sw.to)) < before+1 {
			t.Errorf("no PLI for layer %d after setTarget(%d)", sw.to, sw.to)
		}
		for range 3 {
			step(sw.to, false, false)
			step(sw.from, false, true)
		}
		if cur, _ := f.d.Layer(); cur != sw.from {
			t.Errorf("Layer() = %d before %d's keyframe, want %d", cur, sw.to, sw.from)
		}
		f.clock.Advance(20 * time.Millisecond) // a timestamp gap worth measuring
		switches = append(switches, len(want))
		step(sw.to, true, true)
		step(sw.from, false, false)
		for range 6 {
			step(sw.to, false, true)
			step(sw.from, false, false)
		}
		if cur, _ := f.d.Layer(); cur != sw.to {
			t.Errorf("Layer() = %d after %d's keyframe", cur, sw.to)
		}
	}
	return want, switches
}

// simulcastSources gives q and h numbering far apart, one of them about to
// wrap in every field.
var simulcastSources = []struct {
	name string
	q, h vp8Source
}{
	{"q wraps", vp8Source{sn: 65520, ts: 0xffffd000, pic: 0x7ff8, tl0: 250, keyIdx: 30},
		vp8Source{sn: 1200, ts: 12345, pic: 5, tl0: 100, keyIdx: 3}},
	{"h wraps", vp8Source{sn: 30000, ts: 777, pic: 1000, tl0: 3, keyIdx: 0},
		vp8Source{sn: 65510, ts: 0xffffffff - 35000, pic: 0x7ff3, tl0: 252, keyIdx: 31}},
}

func newSimulcast(t *testing.T, i int) *fwd {
	f := newFwd(t, fwdConfig{layers: 2, bind: true, firstSN: 40000, firstTS: 1 << 31})
	for l, s := range []vp8Source{simulcastSources[i].q, simulcastSources[i].h} {
		f.src[l].sn, f.src[l].ts, f.src[l].pic, f.src[l].tl0, f.src[l].keyIdx = s.sn, s.ts, s.pic, s.tl0, s.keyIdx
	}
	return f
}

func TestForwardSimulcastSwitch(t *testing.T) {
	for i, tc := range simulcastSources {
		t.Run(tc.name, func(t *testing.T) {
			f := newSimulcast(t, i)
			var notified atomic.Int32
			f.d.onChange = func() { notified.Add(1) }
			want, switches := switchScenario(f)

			outs := f.w.all()
			if got, want := outKeys(outs), keysOf(want); !slices.Equal(got, want) {
				t.Fatalf("forwarded %v\nwant       %v", got, want)
			}
			restarts := map[int]bool{}
			for _, s := range switches {
				restarts[s] = true
			}
			f.check(outs, streamCheck{restarts: restarts})
			for _, s := range switches {
				gap := outs[s].hdr.Timestamp - outs[s-1].hdr.Timestamp
				lo, hi := f.tsGapBounds(outs[s-1].key(), outs[s].key())
				if gap < lo || gap > hi {
					t.Errorf("switch at out[%d]: timestamp gap %d ticks, wall time says %d..%d", s, gap, lo, hi)
				}
			}
			// start, up, down
			if n := notified.Load(); n != 3 {
				t.Errorf("onChange called %d times, want 3", n)
			}
			// The scenario must really cross the wrap it is named for.
			wrapped := map[int]bool{}
			for _, p := range want {
				if p.sn == 0 {
					wrapped[p.layer] = true
				}
			}
			if len(wrapped) == 0 {
				t.Errorf("no forwarded source crossed sequence number 0")
			}
		})
	}
}

func TestForwardTemporalLayers(t *testing.T) {
	// Frames 0..19 with TIDs 0,2,1,2,...; the targets are set just before
	// the frame with the index given.
	tests := []struct {
		name         string
		perFrame     int
		lower        uint8
		lowerAt      int
		raise        uint8
		raiseAt      int
		wantForwards []int
	}{
		{"base only, T2 asked for at a TID1 frame", 1, 0, 5, 2, 10,
			[]int{0, 1, 2, 3, 4, 8, 12, 13, 14, 15, 16, 17, 18, 19}},
		{"base only, multi-packet frames", 3, 0, 5, 2, 10,
			[]int{0, 1, 2, 3, 4, 8, 12, 13, 14, 15, 16, 17, 18, 19}},
		{"drop T2 from a TID0 frame, all asked for at a TID2 frame", 1, 1, 4, allTemporal, 13,
			[]int{0, 1, 2, 3, 4, 6, 8, 10, 12, 14, 16, 17, 18, 19}},
		{"drop T1 and T2, multi-packet, raised to T1 at a TID0 frame", 2, 0, 1, 1, 8,
			[]int{0, 4, 8, 10, 12, 14, 16, 18}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFwd(t, fwdConfig{layers: 1, bind: true, firstSN: 65530, firstTS: 100})
			f.src[0].pic, f.src[0].tl0 = 0x7ffd, 254
			frameOf := map[pktKey]int{}
			for i := range 20 {
				switch i {
				case tc.lowerAt:
					f.d.setTarget(0, tc.lower)
					if _, tmp := f.d.Layer(); tmp != int(tc.lower) {
						t.Errorf("temporal %d right after lowering to %d", tmp, tc.lower)
					}
				case tc.raiseAt:
					f.d.setTarget(0, tc.raise)
				}
				for _, p := range f.frames(0, 1, tc.perFrame, i == 0) {
					frameOf[p.key2()] = i
				}
			}
			outs := f.w.all()
			var got []int
			for _, o := range outs {
				if fr := frameOf[o.key()]; len(got) == 0 || got[len(got)-1] != fr {
					got = append(got, fr)
				}
			}
			if !slices.Equal(got, tc.wantForwards) {
				t.Errorf("frames forwarded %v\nwant             %v", got, tc.wantForwards)
			}
			if len(outs) != len(tc.wantForwards)*tc.perFrame {
				t.Errorf("%d packets forwarded, want %d whole frames", len(outs), len(tc.wantForwards))
			}
			f.check(outs, streamCheck{})
		})
	}
}

// TestForwardReordering checks that reordering and duplication inside a
// layer do not change what a packet becomes: each packet must leave with
// the numbers it gets when everything arrives in order.
func TestForwardReordering(t *testing.T) {
	const frames = 10
	tests := []struct {
		name     string
		firstSN  uint16
		perFrame int
		temporal uint8
		// order of the packets after the keyframe, by index; repeats are duplicates
		order []int
	}{
		{"in order", 100, 2, allTemporal, seq(0, 18)},
		{"swapped inside a frame", 100, 3, allTemporal, cat(seq(0, 3), []int{4, 3, 5}, seq(6, 27))},
		{"late by three frames", 100, 2, allTemporal, cat([]int{0}, seq(2, 8), []int{1}, seq(8, 18))},
		{"duplicates, adjacent and late", 100, 2, allTemporal,
			cat([]int{0, 0, 1, 2, 3, 4, 2}, seq(5, 18), []int{1, 17})},
		{"reordered across sequence number 0", 65531, 2, allTemporal,
			cat(seq(0, 2), []int{3, 2}, seq(4, 18))},
		// Frames 1..9 have TIDs 2,1,2,0,2,1,...: with temporal 1 the TID2
		// frames 1 and 3 are dropped, and frame 2 (TID1) is forwarded though
		// it arrives after frame 3.
		{"late frame from before a dropped temporal frame", 100, 1, 1, cat([]int{0, 2, 1}, seq(3, 9))},
		{"late packet from before a dropped temporal frame", 100, 2, 1,
			cat(seq(0, 3), []int{4, 5, 3}, seq(6, 18))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := vp8Source{ssrc: layerSSRC(0), sn: tc.firstSN, ts: 9000, pic: 300, width: 320, height: 180, size: 120}
			var key []inPkt
			var rest []inPkt
			for i := range frames {
				pkts := src.frame(i == 0, l1t3[i%4], tc.perFrame)
				if i == 0 {
					key = pkts
				} else {
					rest = append(rest, pkts...)
				}
			}
			run := func(order []int) *fwd {
				f := newFwd(t, fwdConfig{layers: 1, bind: true, firstSN: 7, firstTS: 1000})
				f.d.setTarget(0, tc.temporal)
				f.send(key...)
				for _, i := range order {
					f.send(rest[i])
				}
				return f
			}
			ref := run(seq(0, len(rest)))
			byKey := map[pktKey]written{}
			for _, o := range ref.w.all() {
				byKey[o.key()] = o
			}
			f := run(tc.order)
			outs := f.w.all()
			seen := map[pktKey]bool{}
			for i, o := range outs {
				r, ok := byKey[o.key()]
				if !ok {
					t.Errorf("out[%d] %v: not forwarded in order", i, o)
					continue
				}
				seen[o.key()] = true
				if o.hdr.SequenceNumber != r.hdr.SequenceNumber || o.hdr.Timestamp != r.hdr.Timestamp ||
					!bytes.Equal(o.payload, r.payload) {
					t.Errorf("out[%d] %v\n in order it was %v", i, o, r)
				}
			}
			// Every copy is forwarded, duplicates included: the receiver
			// discards them, and one may be the copy that gets through.
			wantOuts := len(key)
			for _, i := range tc.order {
				k := rest[i].key2()
				if _, ok := byKey[k]; ok {
					wantOuts++
				}
				if !seen[k] && byKey[k].payload != nil {
					t.Errorf("packet %v forwarded in order but not when reordered", k)
				}
			}
			if len(outs) != wantOuts {
				t.Errorf("%d packets forwarded, want %d", len(outs), wantOuts)
			}
		})
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func cat(parts ...[]int) []int { return slices.Concat(parts...) }

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

// TestForwardPublisherPadding: a publisher's packet with RTP padding is
// forwarded with its padding, and must survive pion's write path, which
// marshals into a 1492-byte buffer (newFwd's cleanup reports its errors).
func TestForwardPublisherPadding(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		padding byte
	}{
		{"small", 120, 20},
		{"full-size", 1200, 40},
		{"padding-only", 0, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFwd(t, fwdConfig{layers: 1, bind: true, firstSN: 10, firstTS: 10})
			f.frames(0, 1, 2, true)
			var p inPkt
			if tc.size == 0 {
				// Chrome pads on the media SSRC when no RTX is negotiated.
				hdr := rtp.Header{Version: 2, PayloadType: pubPT, SequenceNumber: f.src[0].sn,
					Timestamp: f.src[0].ts - 3000, SSRC: layerSSRC(0)}
				f.src[0].sn++
				p = inPkt{hdr: hdr, layer: 0, sn: hdr.SequenceNumber}.withPadding(tc.padding)
			} else {
				f.src[0].size = tc.size
				p = f.src[0].frame(false, 0, 1)[0].withPadding(tc.padding)
			}
			f.send(p)
			outs := f.w.all()
			if len(outs) != 3 {
				t.Fatalf("%d packets written, want 3", len(outs))
			}
			o := outs[2]
			var wire rtp.Packet
			if err := wire.Unmarshal(o.wire); err != nil || !wire.Padding || wire.PaddingSize != tc.padding ||
				!bytes.Equal(wire.Payload, o.media()) {
				t.Errorf("on the wire: %v padding=%v size=%d", err, wire.Padding, wire.PaddingSize)
			}
			if tc.size > 0 {
				f.check(outs, streamCheck{})
			}
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

// TestForwardConcurrent runs both layers' loops, the allocator's switches
// and probes and NACKs at once, as in production, for the race detector and
// for the invariant that survives any interleaving: the first transmissions
// form one gapless sequence, and every duplicate is a byte-exact resend.
func TestForwardConcurrent(t *testing.T) {
	f := newFwd(t, fwdConfig{layers: 2, bind: true, firstSN: 65000, firstTS: 0})
	// f.send's bookkeeping is not for concurrent use: route directly.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for l := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var hdr rtp.Header
			pkt := packet{layer: l, header: &hdr}
			buf := make([]byte, 1500)
			for i := range 400 {
				for _, p := range f.src[l].frame(i%20 == 0, 0, 2) {
					n := copy(buf, p.raw)
					f.track.route(f.layer(l), buf[:n], f.clock.Now(), &pkt)
				}
			}
		}()
	}
	var ctl sync.WaitGroup
	ctl.Add(1)
	go func() {
		defer ctl.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f.d.setTarget(i/50%2, allTemporal)
			f.d.writePadding(50)
			if outs := f.w.all(); len(outs) > 0 {
				sn := outs[len(outs)/2].hdr.SequenceNumber
				f.d.retransmit(&rtcp.TransportLayerNack{Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{sn, sn + 1})})
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	wg.Wait()
	close(stop)
	ctl.Wait()

	outs := f.w.all()
	first := map[uint16]written{}
	var sns []uint16
	for _, o := range outs {
		sn := o.hdr.SequenceNumber
		if w, dup := first[sn]; dup {
			if !bytes.Equal(w.wire, o.wire) {
				t.Errorf("sequence number %d sent twice with different content", sn)
			}
			continue
		}
		first[sn] = o
		sns = append(sns, sn)
	}
	slices.SortFunc(sns, func(a, b uint16) int { return int(int16(a - b)) })
	for i := 1; i < len(sns); i++ {
		if sns[i] != sns[i-1]+1 {
			t.Errorf("gap in the outgoing sequence numbers: %d then %d", sns[i-1], sns[i])
		}
	}
	if len(sns) < 400 {
		t.Errorf("only %d packets forwarded", len(sns))
	}
}

// TestForwardSwitchRacesSetTarget: a layer's loop switching while the
// allocator retargets, with nothing else ordering them, as in production.
// Only meaningful under -race.
func TestForwardSwitchRacesSetTarget(t *testing.T) {
	f := newFwd(t, fwdConfig{layers: 2, bind: true})
	f.frames(0, 2, 1, true)
	f.d.setTarget(1, allTemporal)
	start := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-start
		f.frames(1, 1, 1, true) // the switch
	}()
	// Released together, nothing orders the switch and the retarget.
	close(start)
	f.d.setTarget(1, 1)
	<-done
	if cur, _ := f.d.Layer(); cur != 1 {
		t.Errorf("Layer() = %d after h's keyframe", cur)
	}
}
