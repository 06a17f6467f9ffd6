package rtc

import (
	"testing"

	"github.com/pion/rtcp"
)

func TestNeedsParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		pkts []rtcp.Packet
		want bool
	}{
		{"twcc", []rtcp.Packet{&rtcp.TransportLayerCC{MediaSSRC: 1, BaseSequenceNumber: 1, PacketStatusCount: 1,
			PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: 1, RunLength: 1}},
			RecvDeltas:   []*rtcp.RecvDelta{{Type: 1, Delta: 250}}}}, false},
		{"rr+remb", []rtcp.Packet{&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2}}},
			&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: 1e6, SSRCs: []uint32{2}}}, false},
		{"rr+pli", []rtcp.Packet{&rtcp.ReceiverReport{SSRC: 1}, &rtcp.PictureLossIndication{MediaSSRC: 2}}, true},
		{"fir", []rtcp.Packet{&rtcp.FullIntraRequest{FIR: []rtcp.FIREntry{{SSRC: 2}}}}, true},
		{"nack", []rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: 2, Nacks: []rtcp.NackPair{{PacketID: 1}}}}, true},
	} {
		b, err := rtcp.Marshal(tc.pkts)
		if err != nil {
			t.Fatal(err)
		}
		if got := NeedsParse(b); got != tc.want {
			t.Errorf("%s: NeedsParse = %v, want %v", tc.name, got, tc.want)
		}
		// A truncated compound is read up to where it breaks.
		if NeedsParse(b[:len(b)-1]) && !tc.want {
			t.Errorf("%s truncated: NeedsParse true", tc.name)
		}
	}
}
