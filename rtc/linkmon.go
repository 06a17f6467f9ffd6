package rtc

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"

	"github.com/switchboard-sfu/switchboard/internal/clock"
)

// A linkMonitor reads a connection's TWCC feedback for three plain facts
// about the downstream link: how long a queue its packets meet (one-way
// delay above its recent minimum), what share of them is lost, and at what
// rate they arrive.
//
// GCC has the same feedback but judges it by the trend of delay between
// packet groups, which a receiver busy decoding (delay jitter of tens of
// milliseconds) trips now and then, while a drop-tail queue that is already
// full (constant delay, packets dropped) shows no trend at all. A queue
// that packets arrive too slowly to drain, loss and the arrival rate tell a
// link that is too narrow from one that merely jitters, and say how much it
// does carry. Receiver reports add the round trip and, for receivers that
// send no TWCC feedback, the loss.
type linkMonitor struct {
	clock clock.Clock
	mu    sync.Mutex
	ext   uint8 // the TWCC header extension's ID, 0 until a stream uses it
	epoch time.Time
	// sent is indexed by transport-wide sequence number modulo its size:
	// feedback comes within a few hundred milliseconds, far fewer packets
	// than that. It and acks are allocated when the first stream is sent,
	// so a connection that only receives (the publisher's) costs nothing.
	sent *[sentHistory]sentPacket
	acks *[ackHistory]ack // feedback, oldest overwritten first

	// The one-way delay baseline is the minimum over the current and the
	// previous baselineWindow, so that it follows a route that changed.
	baseCur, basePrev int64
	baseStart         int64

	next    int
	n       int
	lastFbk int64 // send clock when feedback last arrived

	// From receiver reports: the largest fraction lost in the last report
	// (if within rrWindow), and the round-trip time.
	rrLoss float64
	rtt    time.Duration
	lastRR int64
}

type sentPacket struct {
	at   int64 // ns since epoch; 0: not recorded
	size int32
	seq  uint16
}

type ack struct {
	sent    int64 // ns since epoch
	arrival int64 // receiver clock, ns; 0: lost
	queue   int64 // ns above the baseline
	size    int32
}

const (
	sentHistory    = 4096
	ackHistory     = 2048
	baselineWindow = 2 * time.Second
	// A standing queue is one that every packet met for queueSpan: delay
	// jitter from a busy receiver spares some of them.
	queueSpan      = 100 * time.Millisecond
	queueThreshold = 50 * time.Millisecond
	earlyQueue     = 20 * time.Millisecond
	// fillingRatio: a link that delivers less than this share of the rate
	// it is sent is filling a queue.
	fillingRatio  = 0.9
	lossSpan      = time.Second
	minLossSample = 20
	deliveredSpan = 500 * time.Millisecond
	// staleFeedback: with no feedback for this long the facts are too old.
	staleFeedback = time.Second
	// rrWindow: receiver reports come about once a second per stream; a
	// loss report older than this is over.
	rrWindow = 3 * time.Second
)

func newLinkMonitor(c clock.Clock) *linkMonitor {
	return &linkMonitor{clock: c, epoch: c.Now(), baseCur: -1, basePrev: -1}
}

func (m *linkMonitor) now() int64 { return int64(m.clock.Now().Sub(m.epoch)) }

// useExtension starts recording packets numbered with header extension id.
func (m *linkMonitor) useExtension(id uint8) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ext = id
	if m.sent == nil {
		m.sent, m.acks = new([sentHistory]sentPacket), new([ackHistory]ack)
	}
}

// onSend records a packet as it leaves.
func (m *linkMonitor) onSend(h *rtp.Header, size int) {
	at := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ext == 0 {
		return
	}
	if b := h.GetExtension(m.ext); len(b) >= 2 {
		m.record(binary.BigEndian.Uint16(b), at, size)
	}
}

func (m *linkMonitor) record(seq uint16, at int64, size int) {
	m.sent[seq%sentHistory] = sentPacket{at: at, size: int32(size), seq: seq}
}

// onFeedback takes one TWCC feedback packet's body (RFC 8888's
// predecessor, draft-holmer-rmcat-transport-wide-cc-extensions-01), read
// in place: it comes ten times a second per subscriber, and rtcp.Unmarshal
// would allocate every chunk and delta of it.
func (m *linkMonitor) onFeedback(body []byte) {
	if len(body) < 16 {
		return
	}
	seq := binary.BigEndian.Uint16(body[8:])
	left := int(binary.BigEndian.Uint16(body[10:]))
	ref := uint32(body[12])<<16 | uint32(body[13])<<8 | uint32(body[14])
	chunks := body[16:]
	// The deltas follow the chunks that cover left packets.
	nchunks := 0
	for covered := 0; covered < left; nchunks++ {
		if 2*nchunks+2 > len(chunks) {
			return
		}
		c := binary.BigEndian.Uint16(chunks[2*nchunks:])
		switch {
		case c>>15 == 0:
			covered += int(c & 0x1fff) // run length
		case c>>14&1 == 0:
			covered += 14 // fourteen one-bit symbols
		default:
			covered += 7 // seven two-bit symbols
		}
	}
	deltas := chunks[2*nchunks:]
	chunks = chunks[:2*nchunks]
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sent == nil {
		return
	}
	m.lastFbk = now
	arrival := int64(ref) * int64(64*time.Millisecond)
	status := func(symbol uint16) bool {
		if left == 0 {
			return false
		}
		left--
		s := m.sent[seq%sentHistory]
		if s.seq != seq {
			s = sentPacket{} // overwritten, or never ours
		}
		m.sent[seq%sentHistory] = sentPacket{}
		seq++
		var received bool
		switch symbol {
		case rtcp.TypeTCCPacketReceivedSmallDelta:
			if len(deltas) < 1 {
				return false
			}
			arrival += int64(deltas[0]) * int64(250*time.Microsecond)
			deltas, received = deltas[1:], true
		case rtcp.TypeTCCPacketReceivedLargeDelta:
			if len(deltas) < 2 {
				return false
			}
			arrival += int64(int16(binary.BigEndian.Uint16(deltas))) * int64(250*time.Microsecond)
			deltas, received = deltas[2:], true
		}
		if s.at == 0 {
			return true // not ours, or reported twice
		}
		a := ack{sent: s.at, size: s.size}
		if received {
			a.arrival = arrival
			a.queue = m.queueDelay(s.at, arrival-s.at)
		}
		m.acks[m.next] = a
		m.next = (m.next + 1) % ackHistory
		m.n = min(m.n+1, ackHistory)
		return true
	}
	for ; len(chunks) >= 2; chunks = chunks[2:] {
		c := binary.BigEndian.Uint16(chunks)
		switch {
		case c>>15 == 0:
			for range c & 0x1fff {
				if !status(c >> 13 & 3) {
					return
				}
			}
		case c>>14&1 == 0:
			for i := 13; i >= 0; i-- {
				if !status(c >> i & 1) {
					return
				}
			}
		default:
			for i := 12; i >= 0; i -= 2 {
				if !status(c >> i & 3) {
					return
				}
			}
		}
	}
}

// onReceiverReportBlocks takes the report blocks of a receiver report as
// they are on the wire.
func (m *linkMonitor) onReceiverReportBlocks(blocks []byte, at time.Time) {
	var reports [31]rtcp.ReceptionReport // the count field's five bits
	n := 0
	for ; n < len(reports) && len(blocks) >= rrBlockSize; n, blocks = n+1, blocks[rrBlockSize:] {
		reports[n] = rtcp.ReceptionReport{
			FractionLost:     blocks[4],
			LastSenderReport: binary.BigEndian.Uint32(blocks[16:]),
			Delay:            binary.BigEndian.Uint32(blocks[20:]),
		}
	}
	m.onReceiverReport(reports[:n], at)
}

// onReceiverReport takes the receiver's reports on our streams: loss, and
// the round trip from the sender report it echoes (RFC 3550 6.4.1).
func (m *linkMonitor) onReceiverReport(reports []rtcp.ReceptionReport, at time.Time) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	// A browser reports on all its streams in one packet.
	loss := 0.0
	for _, r := range reports {
		loss = max(loss, float64(r.FractionLost)/256)
		if r.LastSenderReport != 0 {
			if rtt, ok := ReportRTT(at, r.LastSenderReport, r.Delay); ok {
				m.rtt = rtt
			}
		}
	}
	m.rrLoss, m.lastRR = loss, now
}

// queueDelay updates the baseline with a packet's one-way delay (clock
// offset included) and returns how far above it the packet was.
func (m *linkMonitor) queueDelay(sent, owd int64) int64 {
	if sent-m.baseStart > int64(baselineWindow) {
		m.basePrev, m.baseCur, m.baseStart = m.baseCur, -1, sent
	}
	if m.baseCur < 0 || owd < m.baseCur {
		m.baseCur = owd
	}
	base := m.baseCur
	if m.basePrev >= 0 {
		base = min(base, m.basePrev)
	}
	return owd - base
}

// linkState is what the feedback says now.
type linkState struct {
	Queue     time.Duration // the smallest delay above baseline over queueSpan
	Loss      float64       // over lossSpan
	Delivered int           // bit/s arriving, over deliveredSpan; 0 unknown
	Sent      int           // bit/s at which those packets were sent
	Fresh     bool          // feedback is arriving
	// From receiver reports: the fraction lost (the worst stream's, in
	// the last report interval), and the round trip.
	ReportedLoss float64
	RTT          time.Duration
}

// Congested reports heavy loss, or a standing queue that the link is still
// filling: packets arrive more slowly than they were sent. A queue that
// does not grow is a receiver reading its socket late (a busy machine), or
// a clock that moved, not a link too narrow for what it is sent.
func (s linkState) Congested() bool {
	if !s.Fresh {
		// No TWCC feedback (a receiver without it, or none yet): receiver
		// reports still say what is lost.
		return s.ReportedLoss > heavyLoss
	}
	return s.Loss > heavyLoss || (s.Queue > queueThreshold && s.filling())
}

func (s linkState) filling() bool {
	return s.Delivered > 0 && float64(s.Delivered) < fillingRatio*float64(s.Sent)
}

// Filling reports the first sign of a link at its limit: a queue of over
// earlyQueue that packets arrive too slowly to drain. It is for probes,
// which should stop before their queue delays the media they ride with.
func (s linkState) Filling() bool {
	return s.Fresh && s.Queue > earlyQueue && s.filling()
}

func (m *linkMonitor) state() linkState {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := linkState{RTT: m.rtt}
	if m.now()-m.lastRR < int64(rrWindow) {
		st.ReportedLoss = m.rrLoss
	}
	if m.n == 0 || m.acks == nil {
		return st
	}
	st.Fresh = m.now()-m.lastFbk < int64(staleFeedback)
	newest := m.acks[(m.next+ackHistory-1)%ackHistory]
	var lastArrival int64
	for i := 1; i <= m.n; i++ {
		if a := m.acks[(m.next+ackHistory-i)%ackHistory]; a.arrival != 0 {
			lastArrival = a.arrival
			break
		}
	}
	queue := int64(-1)
	lost, total := 0, 0
	var bytes int64
	first := lastArrival
	firstSent, lastSent := int64(-1), int64(-1)
	for i := 1; i <= m.n; i++ {
		a := m.acks[(m.next+ackHistory-i)%ackHistory]
		inLoss := newest.sent-a.sent < int64(lossSpan)
		inQueue := a.arrival != 0 && lastArrival-a.arrival < int64(queueSpan)
		inRate := a.arrival != 0 && lastArrival-a.arrival < int64(deliveredSpan)
		if !inLoss && a.arrival != 0 && lastArrival-a.arrival >= int64(max(queueSpan, deliveredSpan)) {
			break
		}
		if inLoss {
			total++
			if a.arrival == 0 {
				lost++
			}
		}
		if inQueue && (queue < 0 || a.queue < queue) {
			queue = a.queue
		}
		if inRate {
			bytes += int64(a.size)
			first = min(first, a.arrival)
			if firstSent < 0 || a.sent < firstSent {
				firstSent = a.sent
			}
			lastSent = max(lastSent, a.sent)
		}
	}
	st.Queue = time.Duration(max(queue, 0))
	if total >= minLossSample {
		st.Loss = float64(lost) / float64(total)
	}
	if span := lastArrival - first; span > int64(deliveredSpan)/2 {
		st.Delivered = int(bytes * 8 * int64(time.Second) / span)
	}
	if span := lastSent - firstSent; span > 0 && st.Delivered > 0 {
		st.Sent = int(bytes * 8 * int64(time.Second) / span)
	}
	return st
}

// monitorFactory makes one linkMonitor per PeerConnection and hands it to
// onNew, as cc.InterceptorFactory does with its estimator.
type monitorFactory struct {
	onNew func(*linkMonitor)
}

func (f *monitorFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	m := newLinkMonitor(clock.Real{})
	if f.onNew != nil {
		f.onNew(m)
	}
	return &monitorInterceptor{m: m}, nil
}

type monitorInterceptor struct {
	interceptor.NoOp
	m *linkMonitor
}

// BindLocalStream sees each packet after the TWCC header extension
// interceptor numbered it (it is registered before it, so it is inner).
func (i *monitorInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == sdp.TransportCCURI {
			i.m.useExtension(uint8(e.ID))
		}
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		n, err := w.Write(h, payload, a)
		if err == nil {
			i.m.onSend(h, n)
		}
		return n, err
	})
}

// BindRTCPReader feeds the monitor from the raw compound: one TWCC report
// is one onFeedback, and nothing is allocated.
func (i *monitorInterceptor) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		WalkRTCP(b[:n], func(pt, count uint8, body []byte) bool {
			switch {
			case pt == rtcpRTPFB && count == fmtTWCC:
				i.m.onFeedback(body)
			case pt == rtcpRR && len(body) >= 4:
				i.m.onReceiverReportBlocks(body[4:], i.m.clock.Now())
			}
			return true
		})
		return n, a, err
	})
}
