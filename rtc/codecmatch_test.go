package rtc

import (
	"testing"

	"github.com/pion/webrtc/v4"
)

func TestMatchCodec(t *testing.T) {
	h264 := func(pt uint8, fmtp string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{PayloadType: webrtc.PayloadType(pt),
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: fmtp}}
	}
	vp8 := webrtc.RTPCodecParameters{PayloadType: 100,
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/vp8", ClockRate: 90000}}
	have := []webrtc.RTPCodecParameters{
		vp8,
		h264(102, "packetization-mode=0;profile-level-id=42e01f"),
		h264(104, "packetization-mode=1;profile-level-id=64001f"),
		h264(106, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e034"),
	}
	tests := []struct {
		name   string
		want   webrtc.RTPCodecCapability
		wantPT webrtc.PayloadType // 0: no match
	}{
		{"VP8, MIME type case differs", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, 100},
		{"H.264 same profile, other level", h264(0, "packetization-mode=1;profile-level-id=42e01f").RTPCodecCapability, 106},
		{"H.264 other packetization", h264(0, "packetization-mode=0;profile-level-id=42e01f").RTPCodecCapability, 102},
		{"H.264 high profile", h264(0, "profile-level-id=64001f;packetization-mode=1").RTPCodecCapability, 104},
		{"H.264 no such profile", h264(0, "packetization-mode=1;profile-level-id=4d001f").RTPCodecCapability, 0},
		{"VP9 not offered", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, SDPFmtpLine: "profile-id=0"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := MatchCodec(tc.want, have)
			if ok != (tc.wantPT != 0) || got.PayloadType != tc.wantPT {
				t.Errorf("MatchCodec = %d, %v; want %d", got.PayloadType, ok, tc.wantPT)
			}
		})
	}
}
