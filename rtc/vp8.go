package rtc

// VP8Descriptor holds the fields of a VP8 payload descriptor (RFC 7741
// section 4.2) that a forwarder reads or rewrites, and where they are.
type VP8Descriptor struct {
	// Start is set on the first packet of a frame (S=1, partition 0).
	Start bool
	// Keyframe is set on the first packet of a keyframe.
	Keyframe bool

	PictureID   uint16
	TL0PICIDX   uint8
	TID         uint8
	LayerSync   bool // Y: this frame depends only on TL0 frames
	KeyIdx      uint8
	HasPicture  bool
	HasTL0      bool
	HasTID      bool
	HasKeyIdx   bool
	WidePicture bool // 15-bit PictureID (M=1)

	// Offsets of the fields in the payload, for rewriting in place.
	picOff, tl0Off, tkOff int
	// Size is the descriptor's length in bytes.
	Size int
}

// ParseVP8 reads a VP8 payload descriptor; ok is false when the payload is
// too short to hold the descriptor it announces.
func ParseVP8(p []byte) (d VP8Descriptor, ok bool) {
	if len(p) < 1 {
		return d, false
	}
	d.Start = p[0]&0x10 != 0 && p[0]&0x07 == 0
	i := 1
	if p[0]&0x80 != 0 {
		if len(p) < 2 {
			return d, false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 {
			if len(p) <= i {
				return d, false
			}
			d.HasPicture, d.picOff = true, i
			if p[i]&0x80 != 0 {
				if len(p) <= i+1 {
					return d, false
				}
				d.WidePicture = true
				d.PictureID = uint16(p[i]&0x7f)<<8 | uint16(p[i+1])
				i += 2
			} else {
				d.PictureID = uint16(p[i])
				i++
			}
		}
		if x&0x40 != 0 {
			if len(p) <= i {
				return d, false
			}
			d.HasTL0, d.tl0Off, d.TL0PICIDX = true, i, p[i]
			i++
		}
		if x&0x30 != 0 {
			if len(p) <= i {
				return d, false
			}
			d.tkOff = i
			if x&0x20 != 0 {
				d.HasTID = true
				d.TID = p[i] >> 6
				d.LayerSync = p[i]&0x20 != 0
			}
			if x&0x10 != 0 {
				d.HasKeyIdx = true
				d.KeyIdx = p[i] & 0x1f
			}
			i++
		}
	}
	d.Size = i
	d.Keyframe = d.Start && len(p) > i && p[i]&0x01 == 0
	return d, true
}

// vp8FrameSize reads the frame size from a VP8 keyframe's header (RFC 6386
// section 9.1): 3-byte frame tag, start code 9d 01 2a, 14-bit width and
// height.
func vp8FrameSize(frame []byte) (width, height uint16, ok bool) {
	if len(frame) < 10 || frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
		return 0, 0, false
	}
	return uint16(frame[6]) | uint16(frame[7]&0x3f)<<8, uint16(frame[8]) | uint16(frame[9]&0x3f)<<8, true
}

// Write stores new PictureID, TL0PICIDX and KEYIDX into payload p, which
// must be the payload d was parsed from (or a copy of it).
func (d *VP8Descriptor) Write(p []byte, pictureID uint16, tl0 uint8, keyIdx uint8) {
	if d.HasPicture {
		if d.WidePicture {
			p[d.picOff] = 0x80 | byte(pictureID>>8)&0x7f
			p[d.picOff+1] = byte(pictureID)
		} else {
			p[d.picOff] = byte(pictureID) & 0x7f
		}
	}
	if d.HasTL0 {
		p[d.tl0Off] = tl0
	}
	if d.HasKeyIdx {
		p[d.tkOff] = p[d.tkOff]&0xe0 | keyIdx&0x1f
	}
}

// VP8Munger is VP8's Munger. It keeps one subscriber's PictureID, TL0PICIDX and KEYIDX
// continuous while the server switches it between simulcast layers (each
// with its own numbering) and drops temporal layers: a decoder that sees a
// gap in PictureIDs assumes a lost frame and asks for a keyframe.
//
// It is not safe for concurrent use; the down-track guards it.
type VP8Munger struct {
	started   bool
	picOffset uint16 // out = in + picOffset (mod 2^15) for pictures after the last drop
	tl0Offset uint8
	keyOffset uint8
	lastPic   uint16 // last PictureID sent
	lastTL0   uint8
	lastKey   uint8
	// dropped is the last input picture dropped, so a frame's several
	// packets shift the numbering only once.
	dropped     uint16
	haveDropped bool
	// changes remembers where picOffset changed, so that a late packet of
	// a picture from before a drop keeps the number its frame was given.
	changes [vp8History]picChange
	nchange int
}

type picChange struct {
	from   uint16 // first input PictureID the offset applies to
	offset uint16
}

const (
	picMask    = 0x7fff
	vp8History = 16
)

// picNewer reports whether 15-bit PictureID a is after b.
func picNewer(a, b uint16) bool { return int16((a-b)<<1) > 0 }

// Start maps the picture of info's packet (the first packet of a keyframe
// of the new source) to the picture after the last one sent.
func (m *VP8Munger) Start(info *PayloadInfo) {
	if info.isVP8 {
		m.start(&info.vp8)
	}
}

// Drop accounts for a packet that is not forwarded (a dropped temporal
// layer): the pictures after it move down by one.
func (m *VP8Munger) Drop(info *PayloadInfo) {
	if info.isVP8 {
		m.drop(&info.vp8)
	}
}

// Rewrite copies payload into buf with its PictureID, TL0PICIDX and KEYIDX
// rewritten; a payload that is not VP8 is sent as it is.
func (m *VP8Munger) Rewrite(info *PayloadInfo, payload, buf []byte) ([]byte, Munged) {
	if !info.isVP8 {
		return payload, Munged{}
	}
	var w Munged
	w.PictureID, w.TL0, w.KeyIdx = m.rewrite(&info.vp8)
	out := buf[:len(payload)]
	copy(out, payload)
	info.vp8.Write(out, w.PictureID, w.TL0, w.KeyIdx)
	return out, w
}

// Restore writes w into payload's descriptor.
func (*VP8Munger) Restore(payload []byte, w Munged) {
	if d, ok := ParseVP8(payload); ok {
		d.Write(payload, w.PictureID, w.TL0, w.KeyIdx)
	}
}

func (m *VP8Munger) start(d *VP8Descriptor) {
	if !m.started {
		m.started = true
		m.lastPic, m.lastTL0, m.lastKey = d.PictureID-1, d.TL0PICIDX-1, d.KeyIdx-1
	}
	m.picOffset = (m.lastPic + 1 - d.PictureID) & picMask
	m.tl0Offset = m.lastTL0 + 1 - d.TL0PICIDX
	m.keyOffset = m.lastKey + 1 - d.KeyIdx
	m.haveDropped = false
	m.nchange = 0
	m.record(d.PictureID)
}

func (m *VP8Munger) record(from uint16) {
	m.changes[m.nchange%vp8History] = picChange{from: from & picMask, offset: m.picOffset}
	m.nchange++
}

func (m *VP8Munger) drop(d *VP8Descriptor) {
	if !m.started || !d.HasPicture || (m.haveDropped && m.dropped == d.PictureID) {
		return
	}
	// Only a picture newer than the last sent one shifts the numbering; a
	// late packet of an older picture changes nothing.
	if !picNewer((d.PictureID+m.picOffset)&picMask, m.lastPic) {
		return
	}
	m.dropped, m.haveDropped = d.PictureID, true
	m.picOffset = (m.picOffset - 1) & picMask
	m.record(d.PictureID + 1)
}

// offsetFor is the offset in force for input picture pic.
func (m *VP8Munger) offsetFor(pic uint16) uint16 {
	oldest := max(0, m.nchange-vp8History)
	for i := m.nchange - 1; i >= oldest; i-- {
		c := m.changes[i%vp8History]
		if !picNewer(c.from, pic) {
			return c.offset
		}
	}
	return m.picOffset
}

// rewrite returns the outgoing PictureID, TL0PICIDX and KEYIDX for d.
func (m *VP8Munger) rewrite(d *VP8Descriptor) (pic uint16, tl0 uint8, keyIdx uint8) {
	pic = (d.PictureID + m.offsetFor(d.PictureID)) & picMask
	if !d.WidePicture {
		pic &= 0x7f
	}
	tl0 = d.TL0PICIDX + m.tl0Offset
	keyIdx = (d.KeyIdx + m.keyOffset) & 0x1f
	if picNewer(pic, m.lastPic) || !d.WidePicture {
		m.lastPic = pic
	}
	if d.HasTL0 && int8(tl0-m.lastTL0) > 0 {
		m.lastTL0 = tl0
	}
	if d.HasKeyIdx {
		m.lastKey = keyIdx
	}
	return pic, tl0, keyIdx
}
