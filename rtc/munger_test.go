package rtc

import (
	"bytes"
	"testing"
)

// vp8Pkt builds a VP8 payload with every optional descriptor field
// (15-bit PictureID, TL0PICIDX, TID/Y/KEYIDX) and a tag byte after the
// frame header, so copies can be told apart.
func vp8Pkt(pic uint16, tl0, tid, keyIdx uint8, start, key bool, tag byte) []byte {
	p := []byte{0x80, 0xf0, 0x80 | byte(pic>>8), byte(pic), tl0, tid<<6 | keyIdx}
	if start {
		p[0] |= 0x10
	}
	if key {
		p = append(p, vp8Key...)
	} else {
		p = append(p, vp8Inter...)
	}
	return append(p, tag)
}

func parse(c Codec, p []byte) PayloadInfo {
	var info PayloadInfo
	c.Parse(p, &info)
	return info
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		codec   Codec
		payload []byte
		want    PayloadInfo // compared without the codec's private fields
	}{
		{"VP8 keyframe", CodecVP8, vp8Pkt(7, 1, 0, 3, true, true, 0),
			PayloadInfo{Keyframe: true, FrameStart: true, HasTID: true, TID: 0, Sized: true, Width: 640, Height: 480}},
		{"VP8 interframe, TID 2", CodecVP8, vp8Pkt(8, 1, 2, 3, true, false, 0),
			PayloadInfo{FrameStart: true, HasTID: true, TID: 2}},
		{"VP8 middle of a frame", CodecVP8, vp8Pkt(8, 1, 1, 3, false, false, 0), PayloadInfo{HasTID: true, TID: 1}},
		{"VP8 without extensions", CodecVP8, cat([]byte{0x10}, vp8Key), PayloadInfo{Keyframe: true, FrameStart: true,
			Sized: true, Width: 640, Height: 480}},
		{"VP8 keyframe without a start code", CodecVP8, cat([]byte{0x10}, vp8Key[:3], []byte{0, 0, 0, 1, 2, 3, 4}),
			PayloadInfo{Keyframe: true, FrameStart: true}},
		{"VP8 truncated descriptor", CodecVP8, []byte{0x90, 0xf0, 0x80}, PayloadInfo{}},
		{"VP8 empty", CodecVP8, nil, PayloadInfo{}},
		{"H.264 IDR", CodecH264, []byte{0x65, 0x88}, PayloadInfo{Keyframe: true}},
		{"Opus", CodecOpus, []byte{0x10, 0x00}, PayloadInfo{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parse(tc.codec, tc.payload)
			got.vp8, got.isVP8 = VP8Descriptor{}, false
			if got != tc.want {
				t.Errorf("Parse = %+v\nwant    %+v", got, tc.want)
			}
		})
	}
}

// TestVP8Munger forwards a source, drops a temporal layer, then switches
// to a second source with other numbering: the subscriber must see one
// picture sequence, and a retransmission restored from the source payload
// must equal what was first sent.
func TestVP8Munger(t *testing.T) {
	m := NewMunger(CodecVP8)
	buf := make([]byte, 1500)
	type sent struct {
		payload []byte
		m       Munged
		src     []byte
	}
	var out []sent
	send := func(src []byte) {
		info := parse(CodecVP8, src)
		p, w := m.Rewrite(&info, src, buf)
		out = append(out, sent{bytes.Clone(p), w, src})
	}
	start := func(src []byte) {
		info := parse(CodecVP8, src)
		m.Start(&info)
		send(src)
	}
	drop := func(src []byte) {
		info := parse(CodecVP8, src)
		m.Drop(&info)
	}
	// Source A: pictures 0x7ffe.. (wrapping), TL0 254.., KEYIDX 31.
	start(vp8Pkt(0x7ffe, 254, 0, 31, true, true, 1))
	send(vp8Pkt(0x7ffe, 254, 0, 31, false, false, 2)) // the keyframe's second packet
	drop(vp8Pkt(0x7fff, 254, 2, 31, true, false, 3))  // TID 2 dropped: two packets, one picture
	drop(vp8Pkt(0x7fff, 254, 2, 31, false, false, 4))
	send(vp8Pkt(0x0000, 254, 1, 31, true, false, 5))
	send(vp8Pkt(0x0002, 255, 0, 31, true, false, 6)) // 0x0001 lost: a gap the decoder must see
	// Source B: pictures from 100, TL0 9, KEYIDX 4.
	start(vp8Pkt(100, 9, 0, 4, true, true, 7))
	send(vp8Pkt(101, 9, 2, 4, true, false, 8))

	wantPic := []uint16{0x7ffe, 0x7ffe, 0x7fff, 0x0001, 0x0002, 0x0003}
	wantTL0 := []uint8{254, 254, 254, 255, 0, 0}
	wantKey := []uint8{31, 31, 31, 31, 0, 0}
	for i, s := range out {
		d, ok := ParseVP8(s.payload)
		if !ok || d.PictureID != wantPic[i] || d.TL0PICIDX != wantTL0[i] || d.KeyIdx != wantKey[i] {
			t.Errorf("out[%d]: pic/tl0/keyidx %#x/%d/%d (parsed %v), want %#x/%d/%d", i, d.PictureID, d.TL0PICIDX,
				d.KeyIdx, ok, wantPic[i], wantTL0[i], wantKey[i])
		}
		if !bytes.Equal(s.payload[6:], s.src[6:]) || s.payload[0] != s.src[0] || s.payload[5]&0xe0 != s.src[5]&0xe0 {
			t.Errorf("out[%d]: more than the numbers changed: % x from % x", i, s.payload, s.src)
		}
		resend := bytes.Clone(s.src)
		m.Restore(resend, s.m)
		if !bytes.Equal(resend, s.payload) {
			t.Errorf("out[%d] restored as % x, first sent as % x", i, resend, s.payload)
		}
	}
}

func TestPassThroughMunger(t *testing.T) {
	m := NewMunger(CodecH264)
	src := []byte{0x65, 1, 2, 3}
	info := parse(CodecH264, src)
	m.Start(&info)
	m.Drop(&info)
	buf := make([]byte, 10)
	p, w := m.Rewrite(&info, src, buf)
	if &p[0] != &src[0] || len(p) != len(src) || w != (Munged{}) {
		t.Errorf("Rewrite = % x, %+v: want the payload itself, nothing munged", p, w)
	}
	m.Restore(src, Munged{PictureID: 5})
	if !bytes.Equal(src, []byte{0x65, 1, 2, 3}) {
		t.Errorf("Restore changed the payload: % x", src)
	}
}

// BenchmarkMunger is a codec's per-packet work for one subscriber: parse
// once, rewrite; it must not allocate.
func BenchmarkMunger(b *testing.B) {
	for _, bc := range []struct {
		name    string
		codec   Codec
		payload []byte
	}{
		{"vp8", CodecVP8, cat(vp8Pkt(1, 1, 0, 1, true, false, 0), make([]byte, 1100))},
		{"passthrough", CodecH264, cat([]byte{0x41}, make([]byte, 1100))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := NewMunger(bc.codec)
			buf := make([]byte, 1500)
			var info PayloadInfo
			bc.codec.Parse(bc.payload, &info)
			m.Start(&info)
			b.SetBytes(int64(len(bc.payload)))
			b.ReportAllocs()
			pic := uint16(1)
			for b.Loop() {
				pic = (pic + 1) & 0x7fff
				bc.payload[2], bc.payload[3] = 0x80|byte(pic>>8), byte(pic)
				bc.codec.Parse(bc.payload, &info)
				if p, _ := m.Rewrite(&info, bc.payload, buf); len(p) != len(bc.payload) {
					b.Fatal("payload changed length")
				}
			}
		})
	}
}
