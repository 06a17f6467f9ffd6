package client

import (
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-sfu/switchboard/rtc"
)

// Synthetic VP8 frames look like a browser's to the SFU: one keyframe start
// per keyframe, S and PictureID on every packet, the marker on the last,
// sizes that add up, and a send stamp in each.
func TestWriteFrame(t *testing.T) {
	layers, err := newLayers(Options{VideoBitrate: 1_500_000, Simulcast: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 3 || layers[0].rid != "q" || layers[2].rid != "f" || layers[2].bitrate != 1_500_000 {
		t.Fatalf("layers %+v", layers)
	}
	l := layers[2]
	buf := make([]byte, maxPayload+vp8DescriptorLen)
	for _, tc := range []struct {
		size, packets int
		key           bool
	}{{5000, 5, true}, {1100, 1, false}, {1101, 2, false}, {3, 1, false}, {25000, 23, true}} {
		var got []rtp.Packet
		before := time.Now().UnixNano()
		err := l.writeFrame(buf, tc.size, tc.key, func(p *rtp.Packet) error {
			c := *p
			c.Payload = append([]byte(nil), p.Payload...)
			got = append(got, c)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.packets {
			t.Fatalf("size %d: %d packets, want %d", tc.size, len(got), tc.packets)
		}
		total := 0
		for i, p := range got {
			pl := p.Payload
			total += len(pl) - vp8DescriptorLen
			if len(pl) > maxPayload+vp8DescriptorLen {
				t.Errorf("packet of %d bytes", len(pl))
			}
			if p.Marker != (i == len(got)-1) {
				t.Errorf("packet %d of %d: marker %v", i, len(got), p.Marker)
			}
			if start := pl[0]&0x10 != 0; start != (i == 0) {
				t.Errorf("packet %d: S bit %v", i, start)
			}
			if pid := uint16(pl[2]&0x7f)<<8 | uint16(pl[3]); pl[1] != 0x80 || pl[2]&0x80 == 0 || pid != l.pictureID {
				t.Errorf("packet %d: descriptor % x, want PictureID %d", i, pl[:4], l.pictureID)
			}
			if key := rtc.IsKeyframeStart(rtc.CodecVP8, pl); key != (tc.key && i == 0) {
				t.Errorf("packet %d of a key=%v frame: keyframe start %v", i, tc.key, key)
			}
			if stamp, ok := readStamp(pl); !ok || stamp < before || stamp > time.Now().UnixNano() {
				t.Errorf("packet %d: stamp %v %v", i, stamp, ok)
			}
			if i > 0 && p.SequenceNumber != got[i-1].SequenceNumber+1 {
				t.Errorf("sequence numbers %d, %d", got[i-1].SequenceNumber, p.SequenceNumber)
			}
		}
		if want := max(tc.size, minVideoData); total != want {
			t.Errorf("size %d: frame of %d bytes, want %d", tc.size, total, want)
		}
		if tc.key {
			if d := got[0].Payload[vp8DescriptorLen:]; d[3] != 0x9d || d[4] != 0x01 || d[5] != 0x2a || int(d[6])|int(d[7])<<8 != 640 {
				t.Errorf("keyframe header % x", d[:10])
			}
		}
	}
}
