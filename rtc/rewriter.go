package rtc

// Rewriter maps one incoming RTP stream onto one outgoing stream: it gives
// every subscriber its own sequence number and timestamp space, so that the
// server can start a subscriber mid-stream (at a keyframe) and later switch
// it between sources without the receiver seeing a gap or a jump.
//
// It is not safe for concurrent use; the down-track guards it.
type Rewriter struct {
	started bool
	// startIn is the first incoming sequence number of the current source;
	// anything older is from before the switch and is dropped.
	startIn  uint16
	startOut uint16
	snOffset uint16 // out = in + snOffset
	tsOffset uint32 // out = in + tsOffset
	lastSN   uint16 // highest outgoing sequence number so far
	lastTS   uint32 // timestamp of that packet
}

// NewRewriter returns a Rewriter whose first outgoing packet will carry
// sequence number firstSN and timestamp firstTS (random in production, as
// RFC 3550 asks; fixed in tests).
func NewRewriter(firstSN uint16, firstTS uint32) *Rewriter {
	return &Rewriter{lastSN: firstSN - 1, lastTS: firstTS}
}

// Started reports whether Start has been called.
func (r *Rewriter) Started() bool { return r.started }

// Start makes the packet (sn, ts) the first of a new source: it gets the
// next outgoing sequence number and a timestamp tsGap after the last one
// sent (0 for the very first packet).
func (r *Rewriter) Start(sn uint16, ts uint32, tsGap uint32) {
	nextSN := r.lastSN + 1
	nextTS := r.lastTS
	if r.started {
		nextTS += tsGap
	}
	r.started = true
	r.startIn, r.startOut = sn, nextSN
	r.snOffset = nextSN - sn
	r.tsOffset = nextTS - ts
}

// Rewrite returns the outgoing sequence number and timestamp of an incoming
// packet of the current source, or ok=false when the packet predates Start
// and must not be sent. Reordered and duplicated packets keep their place.
func (r *Rewriter) Rewrite(sn uint16, ts uint32) (outSN uint16, outTS uint32, ok bool) {
	if !r.started || int16(sn-r.startIn) < 0 {
		return 0, 0, false
	}
	outSN, outTS = sn+r.snOffset, ts+r.tsOffset
	if int16(outSN-r.lastSN) > 0 {
		r.lastSN, r.lastTS = outSN, outTS
	}
	return outSN, outTS, true
}

// Incoming maps an outgoing sequence number back to the incoming one, for
// answering a NACK from the cache; ok=false when it belongs to an earlier
// source or was never sent.
func (r *Rewriter) Incoming(outSN uint16) (sn uint16, ok bool) {
	if !r.started || int16(outSN-r.startOut) < 0 || int16(outSN-r.lastSN) > 0 {
		return 0, false
	}
	return outSN - r.snOffset, true
}
