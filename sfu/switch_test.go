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

// Simulcast and temporal layer switches in the forwarding path, alone and
// racing the allocator.

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
					f.track.route(f.layer(l), buf[:n], f.clock.Now(), &pkt, nil)
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
