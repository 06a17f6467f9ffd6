package rtc

import "encoding/binary"

// RTCP packet types and feedback formats read without rtcp.Unmarshal.
const (
	rtcpRR      = 201
	rtcpRTPFB   = 205 // transport-layer feedback
	rtcpPSFB    = 206 // payload-specific feedback
	fmtNACK     = 1
	fmtTWCC     = 15
	fmtPLI      = 1
	fmtFIR      = 4
	rrBlockSize = 24
)

// WalkRTCP calls f with each packet of an RTCP compound: its type, its
// count or feedback format field, and its body after the 4-byte header.
// It stops when f returns false or at the first malformed packet. Reading
// the headers costs nothing, where rtcp.Unmarshal allocates every packet,
// so readers that want one type in ten look before they parse.
func WalkRTCP(b []byte, f func(pt, count uint8, body []byte) bool) {
	for len(b) >= 4 && b[0]>>6 == 2 {
		n := (int(binary.BigEndian.Uint16(b[2:])) + 1) * 4
		if n > len(b) {
			return
		}
		if !f(b[1], b[0]&0x1f, b[4:n]) {
			return
		}
		b = b[n:]
	}
}

// NeedsParse reports whether an RTCP compound holds what a DownTrack acts
// on: a keyframe request (PLI, FIR) or a NACK.
func NeedsParse(b []byte) bool {
	found := false
	WalkRTCP(b, func(pt, count uint8, _ []byte) bool {
		found = pt == rtcpPSFB && (count == fmtPLI || count == fmtFIR) || pt == rtcpRTPFB && count == fmtNACK
		return !found
	})
	return found
}
