package sfu

import (
	"encoding/binary"
	"io"
	"slices"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-sfu/switchboard/internal/clock"
)

// replaySource is a LayerSource that plays recorded packets, then ends.
type replaySource struct {
	rid  string
	ssrc uint32
	pkts [][]byte
}

func (s *replaySource) Read(b []byte) (int, interceptor.Attributes, error) {
	if len(s.pkts) == 0 {
		return 0, nil, io.EOF
	}
	n := copy(b, s.pkts[0])
	s.pkts = s.pkts[1:]
	return n, nil, nil
}
func (s *replaySource) RID() string       { return s.rid }
func (s *replaySource) SSRC() webrtc.SSRC { return webrtc.SSRC(s.ssrc) }

// TestForwardFromSource runs the forwarding loop itself on a layer source
// that is not a publisher's: everything it plays reaches the subscriber,
// and the track ends with its last source.
func TestForwardFromSource(t *testing.T) {
	f := newFwd(t, fwdConfig{layers: 1, bind: true, firstSN: 1, firstTS: 1})
	f.track.layers[0].Store(nil) // the harness's own layer makes way for the source
	src := vp8Source{layer: 0, ssrc: layerSSRC(0), sn: 10, ts: 10, pic: 1, width: 320, height: 180, size: 200}
	var want []pktKey
	rec := &replaySource{rid: "q", ssrc: src.ssrc}
	for i := range 5 {
		for _, p := range src.frame(i == 0, 0, 2) {
			rec.pkts = append(rec.pkts, p.raw)
			want = append(want, p.key2())
		}
	}
	l, ok := f.track.addLayer(rec)
	if !ok || l.index != 0 || l.ssrc != src.ssrc || !slices.Equal(f.track.Info().Layers, []string{"q"}) {
		t.Fatalf("addLayer = %v, %v; layers %v", l, ok, f.track.Info().Layers)
	}
	if _, ok := f.track.addLayer(&replaySource{rid: "q"}); ok {
		t.Error("a second source for layer q was accepted")
	}
	if !f.track.forward(l) {
		t.Error("forward did not report the track's last loop ending")
	}
	if got := outKeys(f.w.all()); !slices.Equal(got, want) {
		t.Errorf("forwarded %v\nwant       %v", got, want)
	}
	if w := l.width.Load(); w != 320 {
		t.Errorf("layer width %d, the keyframe says 320", w)
	}
}

// loopSource plays one packet n times as a stream: each read is the next
// frame's packet, numbered as a real stream's would be.
type loopSource struct {
	pkt  []byte
	n    int
	sn   uint16
	ts   uint32
	pic  uint16
	rid  string
	ssrc uint32
}

func (s *loopSource) Read(b []byte) (int, interceptor.Attributes, error) {
	if s.n == 0 {
		return 0, nil, io.EOF
	}
	s.n--
	s.sn++
	s.ts += 3000
	s.pic = (s.pic + 1) & 0x7fff
	n := copy(b, s.pkt)
	binary.BigEndian.PutUint16(b[2:], s.sn)
	binary.BigEndian.PutUint32(b[4:], s.ts)
	binary.BigEndian.PutUint16(b[rtpHeaderSize+2:], 0x8000|s.pic)
	return n, nil, nil
}
func (s *loopSource) RID() string       { return s.rid }
func (s *loopSource) SSRC() webrtc.SSRC { return webrtc.SSRC(s.ssrc) }

// BenchmarkForwardFromSource is BenchmarkForward through the forwarding
// loop and its LayerSource: the loop's reads must not allocate either.
func BenchmarkForwardFromSource(b *testing.B) {
	f := newFwd(b, fwdConfig{layers: 1, bind: true})
	src := f.src[0]
	src.size = 1100
	f.frames(0, 1, 1, true) // starts the down-track on the harness's layer
	inter := src.frame(false, 0, 1)[0]
	w := &countWriter{}
	f.d.mu.Lock()
	f.d.writer = w // the recording writer copies every packet
	f.d.mu.Unlock()
	// The source takes over layer 0, its stream continuing the harness's.
	f.track.layers[0].Store(nil)
	f.track.clock = clock.Real{} // read per packet, as in production
	s := &loopSource{pkt: inter.raw, n: b.N, sn: inter.sn - 1, ts: inter.ts - 3000, pic: inter.pic - 1, ssrc: src.ssrc}
	l, ok := f.track.addLayer(s)
	if !ok {
		b.Fatal("addLayer refused")
	}
	b.SetBytes(int64(len(inter.raw)))
	b.ReportAllocs()
	b.ResetTimer()
	f.track.forward(l)
	b.StopTimer()
	if w.packets != b.N {
		b.Fatalf("wrote %d packets of %d", w.packets, b.N)
	}
}
