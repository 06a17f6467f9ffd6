package rtc

import "strings"

// Codec identifies the payload format of a track, for the per-packet checks
// that depend on it. It is resolved once per track from the MIME type.
type Codec uint8

// Codecs the SFU understands.
const (
	CodecOther Codec = iota
	CodecOpus
	CodecVP8
	CodecVP9
	CodecH264
)

// CodecOf maps a MIME type ("video/VP8") to a Codec.
func CodecOf(mime string) Codec {
	switch strings.ToLower(mime) {
	case "audio/opus":
		return CodecOpus
	case "video/vp8":
		return CodecVP8
	case "video/vp9":
		return CodecVP9
	case "video/h264":
		return CodecH264
	}
	return CodecOther
}

// IsKeyframeStart reports whether an RTP payload is the first packet of a
// keyframe, the only place a decoder can start or switch streams. It reads
// just enough of the payload descriptor for that and never allocates.
func IsKeyframeStart(c Codec, payload []byte) bool {
	switch c {
	case CodecVP8:
		return vp8KeyframeStart(payload)
	case CodecVP9:
		return vp9KeyframeStart(payload)
	case CodecH264:
		return h264Keyframe(payload)
	}
	return false
}

// vp8KeyframeStart reads the VP8 payload descriptor and the first byte of
// the VP8 frame header, whose low bit is 0 for a keyframe.
func vp8KeyframeStart(p []byte) bool {
	d, ok := ParseVP8(p)
	return ok && d.Keyframe
}

// vp9KeyframeStart reads the flexible/non-flexible VP9 descriptor
// (RFC 9628 section 4.2): a frame that is not inter-predicted (P=0), at its
// beginning (B=1), in spatial layer 0.
func vp9KeyframeStart(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	const (
		flagI = 0x80
		flagP = 0x40
		flagL = 0x20
		flagB = 0x08
	)
	if p[0]&flagP != 0 || p[0]&flagB == 0 {
		return false
	}
	if p[0]&flagL == 0 {
		return true
	}
	i := 1
	if p[0]&flagI != 0 {
		if len(p) <= i {
			return false
		}
		if p[i]&0x80 != 0 {
			i++
		}
		i++
	}
	if len(p) <= i {
		return false
	}
	return p[i]>>1&0x07 == 0 // SID
}

// h264Keyframe reports whether a packet carries an IDR slice or an SPS, which
// in every browser's stream precedes the IDR it belongs to.
func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch nal := p[0] & 0x1f; nal {
	case 5, 7:
		return true
	case 24: // STAP-A: 2-byte size, then a NAL unit, repeated
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if size == 0 || i+size > len(p) {
				return false
			}
			if t := p[i] & 0x1f; t == 5 || t == 7 {
				return true
			}
			i += size
		}
	case 28: // FU-A: start bit and the fragmented NAL's type
		return len(p) > 1 && p[1]&0x80 != 0 && p[1]&0x1f == 5
	}
	return false
}
