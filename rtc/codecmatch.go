package rtc

import (
	"strings"

	"github.com/pion/webrtc/v4"
)

// MatchCodec picks the subscriber's codec for the publisher's: same MIME
// type and, where it changes the bitstream, the same profile and
// packetization.
func MatchCodec(want webrtc.RTPCodecCapability, have []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	for _, c := range have {
		if !strings.EqualFold(c.MimeType, want.MimeType) {
			continue
		}
		switch strings.ToLower(want.MimeType) {
		case "video/h264":
			if fmtp(c.SDPFmtpLine, "packetization-mode") != fmtp(want.SDPFmtpLine, "packetization-mode") ||
				!sameH264Profile(fmtp(c.SDPFmtpLine, "profile-level-id"), fmtp(want.SDPFmtpLine, "profile-level-id")) {
				continue
			}
		case "video/vp9":
			if fmtp(c.SDPFmtpLine, "profile-id") != fmtp(want.SDPFmtpLine, "profile-id") {
				continue
			}
		}
		return c, true
	}
	return webrtc.RTPCodecParameters{}, false
}

// sameH264Profile compares profile_idc, the first byte of profile-level-id;
// the level may differ (level-asymmetry-allowed).
func sameH264Profile(a, b string) bool {
	if len(a) < 2 || len(b) < 2 {
		return a == b
	}
	return strings.EqualFold(a[:2], b[:2])
}

func fmtp(line, key string) string {
	for _, kv := range strings.Split(line, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}
