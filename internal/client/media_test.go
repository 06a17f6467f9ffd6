package client

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// Synthetic VP8 frames look like a browser's to the SFU: one keyframe start
// per keyframe, S and PictureID on every packet, the marker on the last,
// sizes that add up, and a send stamp in each.
func TestWriteFrame(t *testing.T) {
	layers, err := newLayers(Options{VideoBitrate: 1_500_000, FPS: 30, Simulcast: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 3 || layers[0].rid != "q" || layers[2].rid != "f" || layers[0].bitrate != 150_000 || layers[2].bitrate != 1_500_000 {
		t.Fatalf("layers %+v", layers)
	}
	l := layers[2]
	buf := make([]byte, maxPayload+maxDescriptorLen)
	for _, tc := range []struct {
		size, packets int
		key           bool
	}{{5000, 5, true}, {1100, 1, false}, {1101, 2, false}, {3, 1, false}, {900, 1, false}, {25000, 23, true}} {
		var got []rtp.Packet
		before := time.Now().UnixNano()
		pictureID, frame, tl0 := l.pictureID, l.frame, l.tl0
		if tc.key {
			frame = 0
		}
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
			total += len(pl) - vp8TemporalDescriptorLen
			if len(pl) > maxPayload+vp8TemporalDescriptorLen {
				t.Errorf("packet of %d bytes", len(pl))
			}
			if p.Marker != (i == len(got)-1) {
				t.Errorf("packet %d of %d: marker %v", i, len(got), p.Marker)
			}
			if start := pl[0]&0x10 != 0; start != (i == 0) {
				t.Errorf("packet %d: S bit %v", i, start)
			}
			if pid := uint16(pl[2]&0x7f)<<8 | uint16(pl[3]); pl[1] != 0xe0 || pl[2]&0x80 == 0 || pid != pictureID {
				t.Errorf("packet %d: descriptor % x, want I, L, T and PictureID %d", i, pl[:6], pictureID)
			}
			// L1T3: TID 0, 2, 1, 2 with Y on the middle two; TL0PICIDX
			// counts TID 0 frames.
			want := temporalPattern[frame%4]
			wantTL0 := tl0
			if want.tid == 0 {
				wantTL0++
			}
			if tid, y := pl[5]>>6, pl[5]&0x20 != 0; tid != want.tid || y != want.sync || pl[4] != wantTL0 {
				t.Errorf("frame %d: TID %d Y %v TL0PICIDX %d, want %d %v %d", frame, tid, y, pl[4], want.tid, want.sync, wantTL0)
			}
			if key := vp8KeyframeStart(pl); key != (tc.key && i == 0) {
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
			if d := got[0].Payload[vp8TemporalDescriptorLen:]; d[3] != 0x9d || d[4] != 0x01 || d[5] != 0x2a || int(d[6])|int(d[7])<<8 != 1280 {
				t.Errorf("keyframe header % x", d[:10])
			}
		}
	}
}

// The server's publish-layers switches layers off and on; a layer that
// comes back starts with a keyframe.
func TestSetActive(t *testing.T) {
	layers, err := newLayers(Options{VideoBitrate: 1_500_000, FPS: 30, Simulcast: true})
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{video: layers}
	c.setActive([]string{"q", "h"})
	if !layers[0].active.Load() || !layers[1].active.Load() || layers[2].active.Load() || c.keyframe.Load() {
		t.Fatal("f should be off, and no keyframe asked for")
	}
	c.setActive([]string{"q", "h", "f"})
	if !layers[2].active.Load() || !c.keyframe.Load() {
		t.Fatal("f should be back, starting with a keyframe")
	}
}

// A single-layer video follows publish-layers only as on or off.
func TestSetActiveSingleLayer(t *testing.T) {
	layers, err := newLayers(Options{VideoBitrate: 500_000, FPS: 30})
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{video: layers}
	c.setActive([]string{"q"})
	if !layers[0].active.Load() {
		t.Fatal("the only layer was switched off by a non-empty list")
	}
	c.setActive(nil)
	if layers[0].active.Load() {
		t.Fatal("an empty list should pause the video")
	}
	c.setActive([]string{"f"})
	if !layers[0].active.Load() || !c.keyframe.Load() {
		t.Fatal("the video should be back, starting with a keyframe")
	}
}
