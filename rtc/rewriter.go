package rtc

// Rewriter maps one incoming RTP stream onto one outgoing stream: it gives
// every subscriber its own sequence number and timestamp space, so that the
// server can start a subscriber mid-stream (at a keyframe), switch it
// between simulcast layers, drop packets it must not see (higher temporal
// layers) and insert its own (padding probes), all without the receiver
// seeing a gap it would count as loss or a jump in time.
//
// It is not safe for concurrent use; the down-track guards it.
type Rewriter struct {
	started bool
	// startIn is the oldest incoming sequence number still accepted: the
	// first of the current source, or reorderWindow behind the highest once
	// the stream has moved on. Older packets are from before the switch (or
	// hopelessly late) and are dropped. The caller feeds a Rewriter only the
	// packets of the current source.
	startIn  uint16
	highest  uint16 // highest incoming sequence number seen since Start
	snOffset uint16 // out = in + snOffset for packets after the last change
	tsOffset uint32 // out = in + tsOffset
	lastSN   uint16 // highest outgoing sequence number so far
	lastTS   uint32 // timestamp of that packet

	// changes remembers where snOffset changed (a drop or an inserted
	// packet), so a reordered packet from before a change gets the number
	// that was kept free for it.
	changes [historySize]offsetChange
	nchange int // entries in use, newest at index (nchange-1) % historySize
}

type offsetChange struct {
	from   uint16 // first incoming sequence number the offset applies to
	offset uint16
}

// historySize bounds how far back reordering is honoured, counted in drops
// and insertions; older stragglers are dropped.
const historySize = 64

// reorderWindow is how far behind the highest sequence number a packet is
// still placed; it keeps serial-number comparisons valid on long streams.
const reorderWindow = 0x4000

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
	r.startIn, r.highest = sn, sn-1
	r.snOffset = nextSN - sn
	r.tsOffset = nextTS - ts
	r.nchange = 0
	r.record(sn)
}

func (r *Rewriter) record(from uint16) {
	r.changes[r.nchange%historySize] = offsetChange{from: from, offset: r.snOffset}
	r.nchange++
}

// offsetAt finds the offset in force for an incoming sequence number older
// than the highest one.
func (r *Rewriter) offsetAt(sn uint16) (uint16, bool) {
	oldest := max(0, r.nchange-historySize)
	for i := r.nchange - 1; i >= oldest; i-- {
		c := r.changes[i%historySize]
		// An entry from before the window applies to all of it.
		if int16(sn-c.from) >= 0 || int16(c.from-r.startIn) < 0 {
			return c.offset, true
		}
	}
	return 0, false
}

// Rewrite returns the outgoing sequence number and timestamp of an incoming
// packet of the current source, or ok=false when the packet predates Start
// (or the reordering history) and must not be sent. Reordered and
// duplicated packets keep their place.
func (r *Rewriter) Rewrite(sn uint16, ts uint32) (outSN uint16, outTS uint32, ok bool) {
	if !r.started || int16(sn-r.startIn) < 0 {
		return 0, 0, false
	}
	offset := r.snOffset
	if int16(sn-r.highest) > 0 {
		r.highest = sn
		if sn-r.startIn > reorderWindow {
			r.startIn = sn - reorderWindow
		}
	} else if offset, ok = r.offsetAt(sn); !ok {
		return 0, 0, false
	}
	outSN, outTS = sn+offset, ts+r.tsOffset
	if int16(outSN-r.lastSN) > 0 {
		r.lastSN, r.lastTS = outSN, outTS
	}
	return outSN, outTS, true
}

// Drop removes an incoming packet from the outgoing stream: the packets
// after it move down by one so that no gap appears. A reordered packet
// older than the highest seen cannot be removed that way (its number may
// already be behind a sent one) and is left as a gap.
func (r *Rewriter) Drop(sn uint16) {
	if !r.started || int16(sn-r.highest) <= 0 {
		return
	}
	r.highest = sn
	if sn-r.startIn > reorderWindow {
		r.startIn = sn - reorderWindow
	}
	r.snOffset--
	r.record(sn + 1)
}

// Insert takes the next outgoing sequence number for a packet that has no
// incoming counterpart (padding), with the last timestamp sent.
func (r *Rewriter) Insert() (outSN uint16, outTS uint32) {
	r.lastSN++
	r.snOffset++
	r.record(r.highest + 1)
	return r.lastSN, r.lastTS
}
