package rtc

import (
	"bytes"
	"testing"
)

// FuzzPayload runs a sequence of payloads of any codec through Parse and a
// subscriber's Munger, as the forwarding path does with each packet it
// forwards or drops: no payload makes either panic or write past the
// payload's length, the rewritten payload differs from the source only in
// the descriptor, and Restore reproduces what Rewrite sent.
func FuzzPayload(f *testing.F) {
	vp8Key := []byte{0x90, 0xe0, 0x80, 0x01, 0x05, 0x20, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00, 1, 2, 3}
	f.Add(byte(CodecVP8), vp8Key, []byte{0x80, 0xe0, 0x80, 0x02, 0x05, 0x40, 0x11, 0x02, 0x00})
	f.Add(byte(CodecVP8), []byte{0x80, 0x80, 0xff}, []byte{0x90})
	f.Add(byte(CodecVP9), []byte{0x8a, 0x80, 0x01, 0x18, 0x01, 0x40, 0x00, 0xb4, 0x00}, []byte{0x80})
	f.Add(byte(CodecH264), []byte{0x7c, 0x85, 0x88, 0x84}, []byte{0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce})
	f.Add(byte(CodecOpus), []byte{0xfc, 0xff, 0xfe}, []byte{})
	f.Fuzz(func(t *testing.T, codec byte, first, next []byte) {
		c := Codec(codec) % (CodecH264 + 1)
		m := NewMunger(c)
		buf := make([]byte, 1500)
		started := false
		for i, payload := range [][]byte{first, next, first} {
			if len(payload) > len(buf) {
				return
			}
			var info PayloadInfo
			c.Parse(payload, &info)
			if i == 1 {
				m.Drop(&info) // a packet not forwarded between two that are
				continue
			}
			if info.Keyframe && !started {
				m.Start(&info)
				started = true
			}
			if !started {
				continue
			}
			src := append([]byte(nil), payload...)
			out, written := m.Rewrite(&info, payload, buf)
			if len(out) != len(payload) {
				t.Fatalf("rewrote %d bytes into %d", len(payload), len(out))
			}
			if !bytes.Equal(payload, src) {
				t.Fatal("Rewrite changed the source payload, which other subscribers share")
			}
			again := append([]byte(nil), payload...)
			m.Restore(again, written)
			if !bytes.Equal(again, out) {
				t.Fatalf("Restore made % x, Rewrite sent % x", again, out)
			}
		}
		if c == CodecVP8 && bytes.Equal(first, vp8Key) && !started {
			t.Fatal("a VP8 keyframe did not start the stream")
		}
	})
}
