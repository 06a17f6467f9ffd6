package rtc

import (
	"bytes"
	"fmt"
	"testing"

	rtpcodecs "github.com/pion/rtp/codecs"
)

func TestCodecOf(t *testing.T) {
	tests := []struct {
		mime string
		want Codec
	}{
		{"audio/opus", CodecOpus},
		{"audio/OPUS", CodecOpus},
		{"Audio/Opus", CodecOpus},
		{"video/VP8", CodecVP8},
		{"video/vp8", CodecVP8},
		{"VIDEO/VP8", CodecVP8},
		{"video/VP9", CodecVP9},
		{"video/vp9", CodecVP9},
		{"video/H264", CodecH264},
		{"video/h264", CodecH264},
		{"Video/H264", CodecH264},
		{"video/AV1", CodecOther},
		{"video/H265", CodecOther},
		{"audio/PCMU", CodecOther},
		{"video/rtx", CodecOther},
		// The kind matters: a VP8 "audio" track is not something we parse.
		{"audio/VP8", CodecOther},
		{"VP8", CodecOther},
		{"video/VP8 ", CodecOther},
		{"", CodecOther},
	}
	for _, tt := range tests {
		if got := CodecOf(tt.mime); got != tt.want {
			t.Errorf("CodecOf(%q) = %d, want %d", tt.mime, got, tt.want)
		}
	}
}

// keyframeCase is one payload with its expected verdict. need is the length of
// the shortest prefix that holds everything the verdict depends on: every
// shorter prefix is an incomplete packet and must be reported as no keyframe.
type keyframeCase struct {
	name    string
	codec   Codec
	payload []byte
	want    bool
	need    int
}

// VP8 frame starts (RFC 6386 section 9.1). Bit 0 of the frame tag is the
// inverse keyframe flag; a keyframe's tag is followed by the start code.
var (
	vp8Key   = []byte{0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01}
	vp8Inter = []byte{0x51, 0x02, 0x00, 0x12, 0x34, 0x56}
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// The descriptor bytes below are chosen so that misreading the descriptor's
// length lands on a byte of the opposite parity: a keyframe case whose
// descriptor ends in an odd byte, an interframe case whose descriptor ends in
// an even one. An off-by-one in the parser then flips the verdict.
var vp8Cases = []keyframeCase{
	{"key, no extension", CodecVP8, cat([]byte{0x10}, vp8Key), true, 2},
	{"key, N bit set", CodecVP8, cat([]byte{0x30}, vp8Key), true, 2},
	{"key, X with no fields", CodecVP8, cat([]byte{0x90, 0x01}, vp8Key), true, 3},
	{"key, 7-bit PictureID", CodecVP8, cat([]byte{0x90, 0x80, 0x05}, vp8Key), true, 4},
	{"key, 15-bit PictureID", CodecVP8, cat([]byte{0x90, 0x80, 0x81, 0x23}, vp8Key), true, 5},
	{"key, L only", CodecVP8, cat([]byte{0x90, 0x40, 0x07}, vp8Key), true, 4},
	{"key, T only", CodecVP8, cat([]byte{0x90, 0x20, 0x41}, vp8Key), true, 4},
	{"key, K only", CodecVP8, cat([]byte{0x90, 0x10, 0x03}, vp8Key), true, 4},
	{"key, T and K share a byte", CodecVP8, cat([]byte{0x90, 0x30, 0x61}, vp8Key), true, 4},
	{"key, I L T K with 7-bit PictureID", CodecVP8, cat([]byte{0x90, 0xf0, 0x05, 0x07, 0x41}, vp8Key), true, 6},
	{"key, I L T K with 15-bit PictureID", CodecVP8, cat([]byte{0x90, 0xf0, 0xff, 0x7f, 0x03, 0x41}, vp8Key), true, 7},
	{"inter, no extension", CodecVP8, cat([]byte{0x10}, vp8Inter), false, 0},
	{"inter, 7-bit PictureID", CodecVP8, cat([]byte{0x90, 0x80, 0x04}, vp8Inter), false, 0},
	{"inter, 15-bit PictureID", CodecVP8, cat([]byte{0x90, 0x80, 0x80, 0x02}, vp8Inter), false, 0},
	{"inter, I L T K", CodecVP8, cat([]byte{0x90, 0xf0, 0x81, 0x22, 0x06, 0x40}, vp8Inter), false, 0},
	{"continuation S=0", CodecVP8, cat([]byte{0x00}, vp8Key), false, 0},
	{"continuation S=0 with extension", CodecVP8, cat([]byte{0x80, 0x80, 0x05}, vp8Key), false, 0},
	{"start of partition 1", CodecVP8, cat([]byte{0x11}, vp8Key), false, 0},
	{"start of partition 7", CodecVP8, cat([]byte{0x97, 0x80, 0x05}, vp8Key), false, 0},
	{"descriptor only", CodecVP8, []byte{0x90, 0xf0, 0x81, 0x23, 0x07, 0x41}, false, 0},
	{"empty", CodecVP8, []byte{}, false, 0},
	{"nil", CodecVP8, nil, false, 0},
}

// vp9Key and vp9Inter are the first bytes of VP9 uncompressed headers
// (profile 0, shown): frame_type 0 with the sync code, and frame_type 1.
var (
	vp9Key   = []byte{0x82, 0x49, 0x83, 0x42, 0x00, 0x02, 0x7f, 0x01, 0x67, 0x00}
	vp9Inter = []byte{0x86, 0x00, 0x40, 0x92, 0x00}
)

// In the VP9 cases a misplaced layer byte lands on one whose SID bits are
// non-zero, so a parser that mis-sizes the PictureID gets the opposite answer.
var vp9Cases = []keyframeCase{
	{"non-flexible, B only", CodecVP9, cat([]byte{0x08}, vp9Key), true, 1},
	{"non-flexible, 7-bit PictureID, no L", CodecVP9, cat([]byte{0x88, 0x05}, vp9Key), true, 1},
	{"non-flexible, 15-bit PictureID, no L", CodecVP9, cat([]byte{0x88, 0x81, 0x23}, vp9Key), true, 1},
	{"non-flexible, L and TL0PICIDX, SID 0", CodecVP9, cat([]byte{0xa8, 0x85, 0x02, 0x00, 0x13}, vp9Key), true, 4},
	{"non-flexible, 7-bit PictureID, L, SID 0", CodecVP9, cat([]byte{0xa8, 0x05, 0x00, 0x13}, vp9Key), true, 3},
	{"non-flexible, L without PictureID, SID 0", CodecVP9, cat([]byte{0x28, 0x00, 0x13}, vp9Key), true, 2},
	{"non-flexible, SID 0 with TID U D set", CodecVP9, cat([]byte{0xa8, 0x85, 0x02, 0xf1, 0x11}, vp9Key), true, 4},
	{"non-flexible, L, SID 1", CodecVP9, cat([]byte{0xa8, 0x85, 0x00, 0x02, 0x11}, vp9Key), false, 0},
	{"non-flexible, L without PictureID, SID 2", CodecVP9, cat([]byte{0x28, 0x04, 0x11}, vp9Key), false, 0},
	{"flexible, 15-bit PictureID, L, SID 0", CodecVP9, cat([]byte{0xb8, 0x81, 0x23, 0x00}, vp9Key), true, 4},
	{"flexible, 7-bit PictureID, L, SID 0", CodecVP9, cat([]byte{0xb8, 0x05, 0x00}, vp9Key), true, 3},
	{"flexible, no L", CodecVP9, cat([]byte{0x98, 0x81, 0x23}, vp9Key), true, 1},
	{"flexible, L, SID 1", CodecVP9, cat([]byte{0xb8, 0x81, 0x20, 0x02}, vp9Key), false, 0},
	{"flexible, L, SID 7", CodecVP9, cat([]byte{0xb8, 0x81, 0x20, 0xee}, vp9Key), false, 0},
	{"P=1 interframe, non-flexible", CodecVP9, cat([]byte{0xc8, 0x81, 0x23}, vp9Inter), false, 0},
	{"P=1 interframe, flexible with L", CodecVP9, cat([]byte{0xf8, 0x81, 0x23, 0x00, 0x02}, vp9Inter), false, 0},
	{"B=0 continuation", CodecVP9, cat([]byte{0x80, 0x81, 0x23}, vp9Key), false, 0},
	{"B=0 end of frame", CodecVP9, cat([]byte{0xb4, 0x81, 0x23, 0x00}, vp9Key), false, 0},
	{"empty", CodecVP9, []byte{}, false, 0},
}

var (
	h264SPS = []byte{0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40}
	h264PPS = []byte{0x68, 0xce, 0x3c, 0x80}
	h264IDR = []byte{0x65, 0x88, 0x84, 0x00, 0x33}
	h264P   = []byte{0x41, 0x9a, 0x02, 0x0c}
)

// stapA aggregates NAL units the way RFC 6184 section 5.7.1 does.
func stapA(nalus ...[]byte) []byte {
	p := []byte{0x78}
	for _, n := range nalus {
		p = append(p, byte(len(n)>>8), byte(len(n)))
		p = append(p, n...)
	}
	return p
}

var h264Cases = []keyframeCase{
	{"single NAL IDR", CodecH264, h264IDR, true, 1},
	{"single NAL IDR, nal_ref_idc 1", CodecH264, []byte{0x25, 0x88, 0x84}, true, 1},
	{"single NAL SPS", CodecH264, h264SPS, true, 1},
	{"single NAL PPS", CodecH264, h264PPS, false, 0},
	{"single NAL non-IDR slice", CodecH264, h264P, false, 0},
	{"single NAL SEI", CodecH264, []byte{0x06, 0x05, 0x01, 0x80}, false, 0},
	{"STAP-A SPS PPS", CodecH264, stapA(h264SPS, h264PPS), true, 3 + len(h264SPS)},
	{"STAP-A PPS IDR", CodecH264, stapA(h264PPS, h264IDR), true, 3 + len(h264PPS) + 2 + len(h264IDR)},
	{"STAP-A PPS SEI non-IDR", CodecH264, stapA(h264PPS, []byte{0x06, 0x05}, h264P), false, 0},
	{"STAP-A length past the end", CodecH264, []byte{0x78, 0x00, 0x10, 0x67, 0x42, 0xc0}, false, 0},
	{"STAP-A bad length hides an IDR", CodecH264, cat(stapA(h264P)[:3], h264P, []byte{0x00, 0x09}, h264IDR[:3]), false, 0},
	{"STAP-A zero length", CodecH264, cat([]byte{0x78, 0x00, 0x00}, h264SPS), false, 0},
	{"STAP-A header only", CodecH264, []byte{0x78}, false, 0},
	{"STAP-A one length byte", CodecH264, []byte{0x78, 0x00}, false, 0},
	{"FU-A start of IDR", CodecH264, []byte{0x7c, 0x85, 0x88, 0x84, 0x00}, true, 2},
	{"FU-A middle of IDR", CodecH264, []byte{0x7c, 0x05, 0x10, 0x20, 0x30}, false, 0},
	{"FU-A end of IDR", CodecH264, []byte{0x7c, 0x45, 0x10, 0x20, 0x30}, false, 0},
	{"FU-A start of non-IDR", CodecH264, []byte{0x5c, 0x81, 0x9a, 0x02}, false, 0},
	{"FU-A middle of non-IDR", CodecH264, []byte{0x5c, 0x01, 0x9a, 0x02}, false, 0},
	{"FU-A indicator only", CodecH264, []byte{0x7c}, false, 0},
	{"empty", CodecH264, []byte{}, false, 0},
}

// Audio and unknown codecs have no keyframes; even bytes that would be one in
// a video codec must not count.
var otherCases = []keyframeCase{
	{"Opus TOC", CodecOpus, []byte{0xfc, 0xff, 0xfe}, false, 0},
	{"Opus carrying VP8 keyframe bytes", CodecOpus, cat([]byte{0x10}, vp8Key), false, 0},
	{"Opus carrying H264 IDR bytes", CodecOpus, h264IDR, false, 0},
	{"Other carrying H264 SPS bytes", CodecOther, h264SPS, false, 0},
	{"Other empty", CodecOther, nil, false, 0},
	{"out-of-range codec", Codec(200), cat([]byte{0x10}, vp8Key), false, 0},
}

func allKeyframeCases() []keyframeCase {
	var all []keyframeCase
	for _, cs := range [][]keyframeCase{vp8Cases, vp9Cases, h264Cases, otherCases} {
		all = append(all, cs...)
	}
	return all
}

func codecName(c Codec) string {
	switch c {
	case CodecVP8:
		return "VP8"
	case CodecVP9:
		return "VP9"
	case CodecH264:
		return "H264"
	case CodecOpus:
		return "Opus"
	}
	return fmt.Sprintf("codec%d", c)
}

func TestIsKeyframeStart(t *testing.T) {
	for _, tt := range allKeyframeCases() {
		t.Run(codecName(tt.codec)+"/"+tt.name, func(t *testing.T) {
			if got := IsKeyframeStart(tt.codec, tt.payload); got != tt.want {
				t.Errorf("IsKeyframeStart(% x) = %v, want %v", tt.payload, got, tt.want)
			}
		})
	}
}

// The forwarding loop passes whatever arrived off the wire, so every prefix
// of a real packet must be handled without a panic, and one that stops before
// the verdict's bytes must not start a subscriber on a keyframe it cannot
// decode.
func TestIsKeyframeStartTruncated(t *testing.T) {
	for _, tt := range allKeyframeCases() {
		t.Run(codecName(tt.codec)+"/"+tt.name, func(t *testing.T) {
			for n := 0; n <= len(tt.payload); n++ {
				// No spare capacity: a parser that reslices past len (legal
				// up to cap) would otherwise read the rest of the original
				// payload unnoticed.
				p := append([]byte(nil), tt.payload[:n]...)
				want := tt.want && n >= tt.need
				if got := IsKeyframeStart(tt.codec, p); got != want {
					t.Errorf("IsKeyframeStart(% x) (first %d of %d bytes) = %v, want %v", p, n, len(tt.payload), got, want)
				}
			}
		})
	}
}

// The steady-state forwarding path calls this for every packet.
func TestIsKeyframeStartDoesNotAllocate(t *testing.T) {
	cases := allKeyframeCases()
	allocs := testing.AllocsPerRun(100, func() {
		for _, tt := range cases {
			IsKeyframeStart(tt.codec, tt.payload)
		}
	})
	if allocs != 0 {
		t.Errorf("IsKeyframeStart allocates %v times per round", allocs)
	}
}

// vp8Frame is a synthetic VP8 frame of n bytes: a real frame tag (and start
// code for a keyframe) followed by filler.
func vp8Frame(key bool, n int) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = byte(i*7 + 3)
	}
	if key {
		copy(f, vp8Key)
	} else {
		copy(f, vp8Inter)
	}
	return f
}

// Packets as Pion's own packetizer (the one a Go publisher would use) cuts
// them: only the first packet of a keyframe starts a stream.
func TestIsKeyframeStartVP8Payloader(t *testing.T) {
	for _, pictureID := range []bool{false, true} {
		for _, mtu := range []uint16{1200, 100, 16} {
			t.Run(fmt.Sprintf("pictureID=%v/mtu=%d", pictureID, mtu), func(t *testing.T) {
				pl := &rtpcodecs.VP8Payloader{EnablePictureID: pictureID}
				frames := []struct {
					key bool
					n   int
				}{{true, 900}, {false, 300}, {false, 40}, {true, 2500}, {false, 1}}
				for fi, fr := range frames {
					pkts := pl.Payload(mtu, vp8Frame(fr.key, fr.n))
					if len(pkts) == 0 {
						t.Fatalf("frame %d: payloader produced no packets", fi)
					}
					for pi, p := range pkts {
						want := fr.key && pi == 0
						if got := IsKeyframeStart(CodecVP8, p); got != want {
							t.Errorf("frame %d (key=%v) packet %d of %d: got %v, want %v (descriptor % x)",
								fi, fr.key, pi, len(pkts), got, want, p[:min(len(p), 6)])
						}
					}
				}
			})
		}
	}
}

// Pion's non-flexible VP9 packetizer reads the uncompressed header and marks
// inter frames with P=1.
func TestIsKeyframeStartVP9Payloader(t *testing.T) {
	pl := &rtpcodecs.VP9Payloader{InitialPictureIDFn: func() uint16 { return 0x1234 }}
	frames := []struct {
		key   bool
		frame []byte
	}{
		{true, cat(vp9Key, bytes.Repeat([]byte{0x5a}, 700))},
		{false, cat(vp9Inter, bytes.Repeat([]byte{0xa5}, 300))},
		{true, cat(vp9Key, bytes.Repeat([]byte{0x11}, 50))},
	}
	for fi, fr := range frames {
		pkts := pl.Payload(200, fr.frame)
		if len(pkts) == 0 {
			t.Fatalf("frame %d: payloader produced no packets", fi)
		}
		for pi, p := range pkts {
			want := fr.key && pi == 0
			if got := IsKeyframeStart(CodecVP9, p); got != want {
				t.Errorf("frame %d (key=%v) packet %d of %d: got %v, want %v (descriptor % x)",
					fi, fr.key, pi, len(pkts), got, want, p[:min(len(p), 4)])
			}
		}
	}
}

// Pion's H264 packetizer sends SPS and PPS as one STAP-A before the IDR and
// fragments large NAL units with FU-A. Both the STAP-A and the first fragment
// of the IDR count; nothing of an inter frame does.
func TestIsKeyframeStartH264Payloader(t *testing.T) {
	annexB := func(nalus ...[]byte) []byte {
		var b []byte
		for _, n := range nalus {
			b = append(b, 0, 0, 0, 1)
			b = append(b, n...)
		}
		return b
	}
	bigIDR := cat(h264IDR, bytes.Repeat([]byte{0x77}, 3000))
	bigP := cat(h264P, bytes.Repeat([]byte{0x66}, 3000))

	pl := &rtpcodecs.H264Payloader{}
	tests := []struct {
		name  string
		au    []byte
		wants []bool
	}{
		{"keyframe", annexB(h264SPS, h264PPS, bigIDR), []bool{true, true, false, false}},
		{"inter frame", annexB(bigP), []bool{false, false, false}},
		{"small keyframe", annexB(h264SPS, h264PPS, h264IDR), []bool{true, true}},
		{"small inter frame", annexB(h264P), []bool{false}},
	}
	for _, tt := range tests {
		pkts := pl.Payload(1200, tt.au)
		if len(pkts) != len(tt.wants) {
			t.Fatalf("%s: payloader produced %d packets, want %d", tt.name, len(pkts), len(tt.wants))
		}
		for i, p := range pkts {
			if got := IsKeyframeStart(CodecH264, p); got != tt.wants[i] {
				t.Errorf("%s packet %d (% x...): got %v, want %v", tt.name, i, p[:2], got, tt.wants[i])
			}
		}
	}
}

// FuzzIsKeyframeStart checks that no payload makes the parser panic and, for
// VP8 and VP9, that its verdict matches Pion's full depacketizer wherever that
// accepts the packet.
func FuzzIsKeyframeStart(f *testing.F) {
	for _, tt := range allKeyframeCases() {
		f.Add(tt.payload)
	}
	f.Add([]byte{0x90, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x78, 0xff, 0xff})
	f.Add([]byte{0x78, 0x00, 0x01, 0x78, 0x00, 0x01, 0x65})

	f.Fuzz(func(t *testing.T, p []byte) {
		for c := CodecOther; c <= CodecH264+1; c++ {
			got := IsKeyframeStart(c, p)
			switch c {
			case CodecVP8:
				if want := vp8Reference(p); got != want {
					t.Errorf("VP8 % x: got %v, Pion's parser says %v", p, got, want)
				}
			case CodecVP9:
				if want, ok := vp9Reference(p); ok && got != want {
					t.Errorf("VP9 % x: got %v, Pion's parser says %v", p, got, want)
				}
			case CodecH264:
				if got && len(p) > 0 {
					switch p[0] & 0x1f {
					case 5, 7, 24, 28:
					default:
						t.Errorf("H264 % x: NAL type %d reported as keyframe", p, p[0]&0x1f)
					}
				}
			default:
				if got {
					t.Errorf("%s % x: reported as keyframe", codecName(c), p)
				}
			}
		}
	})
}

// vp8Reference decides with Pion's depacketizer. A descriptor it rejects as
// short, or one with no frame byte after it, cannot be a keyframe start.
func vp8Reference(p []byte) bool {
	var pkt rtpcodecs.VP8Packet
	payload, err := pkt.Unmarshal(p)
	if err != nil || len(payload) == 0 {
		return false
	}
	return pkt.S == 1 && pkt.PID == 0 && payload[0]&0x01 == 0
}

// vp9Reference decides with Pion's depacketizer; ok is false where Pion
// rejects a packet, which IsKeyframeStart is free to judge on fewer bytes.
func vp9Reference(p []byte) (key, ok bool) {
	var pkt rtpcodecs.VP9Packet
	if _, err := pkt.Unmarshal(p); err != nil {
		return false, false
	}
	return !pkt.P && pkt.B && pkt.SID == 0, true
}
