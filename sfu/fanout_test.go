package sfu

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/rtc"
)

// seqWriter records the sequence numbers one subscriber is sent.
type seqWriter struct {
	mu  sync.Mutex
	sns []uint16
}

func (w *seqWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.mu.Lock()
	w.sns = append(w.sns, h.SequenceNumber)
	w.mu.Unlock()
	return 12 + len(payload), nil
}

func (w *seqWriter) Write(b []byte) (int, error) { return len(b), nil }

// A track with more subscribers than one goroutine writes is fanned out
// over helper goroutines: every subscriber still gets every packet, in
// order, and the helpers end with the loop.
func TestFanoutManyDownTracks(t *testing.T) {
	defer goleak.VerifyNone(t)
	const subs, packets = 3*fanoutChunk + 5, 300
	info := TrackInfo{ID: "t", Participant: "p", Kind: webrtc.RTPCodecTypeVideo, Codec: webrtc.MimeTypeVP8}
	track := newTrack(info, "1", vp8Codec, func([]rtcp.Packet) error { return nil }, zap.NewNop())
	l := &layer{index: 0, rid: "q", ssrc: 1, cache: &rtc.PacketCache{}}
	track.layers[0].Store(l)
	writers := make([]*seqWriter, subs)
	for i := range subs {
		d := newDownTrack(track, &Participant{log: zap.NewNop()})
		writers[i] = &seqWriter{}
		d.writer, d.ssrc, d.pt = writers[i], uint32(100+i), subPT
		track.addDownTrack(d)
	}
	src := vp8Source{ssrc: 1, sn: 65400, ts: 1, pic: 1, width: 320, height: 180, size: 1000}
	var hdr rtp.Header
	pkt := packet{layer: 0, header: &hdr}
	buf := make([]byte, 1500)
	for i := range packets {
		p := src.frame(i == 0, 0, 1)[0]
		track.route(l, buf[:copy(buf, p.raw)], time.Now(), &pkt, nil)
	}
	if got := len(l.fanout.jobs); got == 0 && runtime.GOMAXPROCS(0) > 1 {
		t.Errorf("%d down-tracks were written by one goroutine", subs)
	}
	l.fanout.stop()
	track.close()
	for i, w := range writers {
		if len(w.sns) != packets {
			t.Fatalf("subscriber %d got %d packets, want %d", i, len(w.sns), packets)
		}
		for j := 1; j < len(w.sns); j++ {
			if w.sns[j] != w.sns[j-1]+1 {
				t.Fatalf("subscriber %d: sequence numbers %d then %d", i, w.sns[j-1], w.sns[j])
			}
		}
	}
}
