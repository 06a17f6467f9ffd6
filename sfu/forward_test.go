package sfu

import (
	"bytes"
	"slices"
	"testing"

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
