package sfu

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// The fuzz targets of the forwarding path: every byte a publisher or a
// subscriber sends reaches one of them. Seeds live in testdata/fuzz and in
// the f.Add calls; `make fuzz` runs each for a while.

// fuzzCodecs are the tracks a publisher may send, by the fuzzer's choice.
var fuzzCodecs = []webrtc.RTPCodecParameters{
	vp8Codec,
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000}, PayloadType: pubPT},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, PayloadType: pubPT},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}, PayloadType: pubPT},
}

// packets encodes RTP packets for the fuzz input: per packet its layer (a
// byte) and length (two bytes), then the packet.
func packets(pkts ...inPkt) []byte {
	var b []byte
	for _, p := range pkts {
		b = append(b, byte(p.layer))
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.raw)))
		b = append(b, p.raw...)
	}
	return b
}

func seedStream() []byte {
	var pkts []inPkt
	for i := range 3 {
		s := &vp8Source{layer: i, ssrc: layerSSRC(i), width: uint16(320 << i), height: uint16(180 << i), size: 120}
		pkts = append(pkts, s.frame(true, 0, 2)...)
		pkts = append(pkts, s.frame(false, 2, 1)...)
		pkts = append(pkts, s.frame(false, 1, 1)[0].withPadding(20))
	}
	// Header extensions and CSRCs, as browsers send them.
	ext := pkts[0]
	ext.hdr.CSRC = []uint32{1, 2, 3}
	_ = ext.hdr.SetExtension(1, []byte{0x80 | 40}) // audio level
	_ = ext.hdr.SetExtension(3, []byte{0, 7})
	ext.hdr.SequenceNumber += 100
	raw, _ := (&rtp.Packet{Header: ext.hdr, Payload: ext.payload}).Marshal()
	ext.raw = raw
	return packets(append(pkts, ext)...)
}

// routeAll feeds the encoded packets through the track's per-packet route.
func (f *fwd) routeAll(stream []byte) {
	for len(stream) >= 3 {
		layer := int(stream[0]) % len(f.track.layers)
		n := int(binary.BigEndian.Uint16(stream[1:3]))
		stream = stream[3:]
		n = min(n, len(stream), len(f.buf[0]))
		if l := f.layer(layer); l != nil {
			copy(f.buf[layer][:], stream[:n])
			f.track.route(l, f.buf[layer][:n], f.clock.Now(), &f.pkt[layer], nil)
		}
		stream = stream[n:]
	}
}

// checkOutput: whatever came in, what a subscriber is sent is its own
// stream: its SSRC and payload type, RTP version 2, within an MTU.
func (f *fwd) checkOutput(t *testing.T) {
	for _, w := range f.w.all() {
		if w.hdr.SSRC != subSSRC || w.hdr.PayloadType != subPT || w.hdr.Version != 2 || len(w.wire) > 1500 {
			t.Fatalf("sent a packet not in the subscriber's stream: %s (%d bytes)", w, len(w.wire))
		}
	}
}

// FuzzRoute sends arbitrary packets, on any layer of a track of any video
// codec, through the per-packet route to a subscriber.
func FuzzRoute(f *testing.F) {
	seed := seedStream()
	f.Add(byte(0), seed)
	f.Add(byte(1), seedStream())
	f.Add(byte(2), packets(inPkt{layer: 0, raw: []byte{0x80, 96, 0, 1, 0, 0, 0, 1, 0x10, 0, 0, 0, 0x7c, 0x85, 0x88}}))
	f.Add(byte(0), []byte{0, 0, 12, 0xa0, 96, 0, 1, 0, 0, 0, 1, 0x10, 0, 0, 0}) // padding bit, no payload
	f.Add(byte(0), []byte{1, 0xff, 0xff, 0x90})                                 // extension bit, truncated
	f.Fuzz(func(t *testing.T, codec byte, stream []byte) {
		fw := newFwd(t, fwdConfig{layers: 3, bind: true, codec: fuzzCodecs[int(codec)%len(fuzzCodecs)]})
		fw.routeAll(stream)
		fw.checkOutput(t)
		if codec == 0 && bytes.Equal(stream, seed) && len(fw.w.all()) == 0 {
			t.Fatal("a valid VP8 stream forwarded nothing")
		}
	})
}

// FuzzSubscriberRTCP hands arbitrary RTCP to a down-track that has
// forwarded a stream, as its subscriber might send: NACKs (answered from
// the cache), PLI and FIR, REMB, TWCC, receiver reports, malformed lengths.
func FuzzSubscriberRTCP(f *testing.F) {
	marshal := func(pkts ...rtcp.Packet) []byte {
		b, err := rtcp.Marshal(pkts)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	nackAll := marshal(&rtcp.TransportLayerNack{MediaSSRC: subSSRC, Nacks: []rtcp.NackPair{{PacketID: 0, LostPackets: 0xffff}}})
	f.Add(nackAll)
	f.Add(marshal(&rtcp.PictureLossIndication{MediaSSRC: subSSRC}, &rtcp.FullIntraRequest{FIR: []rtcp.FIREntry{{SSRC: subSSRC}}}))
	f.Add(marshal(&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: subSSRC, FractionLost: 20}}},
		&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: 1e6, SSRCs: []uint32{subSSRC}}))
	f.Add(marshal(&rtcp.TransportLayerCC{MediaSSRC: subSSRC, BaseSequenceNumber: 1, PacketStatusCount: 1,
		PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: 1, RunLength: 1}},
		RecvDeltas:   []*rtcp.RecvDelta{{Type: 1, Delta: 250}}}))
	f.Add([]byte{0x81, 205, 0xff, 0xff, 0, 0, 0, 1}) // NACK claiming a huge length
	f.Add([]byte{0x80, 201, 0, 0})
	stream := seedStream()
	f.Fuzz(func(t *testing.T, compound []byte) {
		fw := newFwd(t, fwdConfig{layers: 3, bind: true})
		fw.routeAll(stream)
		sent := len(fw.w.all())
		fw.d.handleRTCP(compound)
		fw.checkOutput(t)
		if bytes.Equal(compound, nackAll) && len(fw.w.all()) == sent {
			t.Fatal("a NACK of every packet sent retransmitted nothing")
		}
	})
}

// ridSource is a layer source that only names itself.
type ridSource struct {
	rid  string
	ssrc webrtc.SSRC
}

func (s ridSource) Read([]byte) (int, interceptor.Attributes, error) { return 0, nil, nil }
func (s ridSource) RID() string                                      { return s.rid }
func (s ridSource) SSRC() webrtc.SSRC                                { return s.ssrc }

// FuzzAddLayer offers a track streams with whatever rids a publisher's SDP
// declares: at most maxLayers are taken, each slot once, and the layers the
// others are told of are the taken rids, never empty ones.
func FuzzAddLayer(f *testing.F) {
	f.Add("q", "h", "f", "x")
	f.Add("", "", "q", "f")
	f.Add("f", "f", "h", "")
	f.Add("x", "q", "y", "z")
	f.Fuzz(func(t *testing.T, a, b, c, d string) {
		tr := newTrack(TrackInfo{ID: "t", Kind: webrtc.RTPCodecTypeVideo}, "1", vp8Codec, func([]rtcp.Packet) error { return nil }, nil)
		taken := map[string]int{}
		for i, rid := range []string{a, b, c, d} {
			l, ok := tr.addLayer(ridSource{rid: rid, ssrc: webrtc.SSRC(i + 1)})
			if !ok {
				continue
			}
			if l.rid != rid || l.index < 0 || l.index >= maxLayers || tr.layers[l.index].Load() != l {
				t.Fatalf("rid %q placed at %d", rid, l.index)
			}
			taken[rid]++
		}
		n := 0
		for i := range tr.layers {
			if tr.layers[i].Load() != nil {
				n++
			}
		}
		if n > maxLayers {
			t.Fatalf("%d layers taken", n)
		}
		for _, rid := range tr.Info().Layers {
			if rid == "" || taken[rid] == 0 {
				t.Fatalf("told of layer %q, taken %v", rid, taken)
			}
		}
	})
}
