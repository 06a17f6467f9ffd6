package client

import (
	"encoding/binary"
	"math"
	"math/bits"
	"sync/atomic"
)

// Synthetic publishers end every RTP payload with a 12-byte trailer: a magic
// word and the send time in Unix nanoseconds. The SFU never reads a payload
// past the VP8 descriptor and frame header, so the trailer arrives as sent,
// and a subscriber on the same host (same clock) measures the time a packet
// spent between the publisher's WriteRTP and its own Read.
const (
	stampMagic = 0x53424c54 // "SBLT"
	stampLen   = 12
)

// putStamp writes the trailer into the last stampLen bytes of payload.
func putStamp(payload []byte, unixNano int64) {
	t := payload[len(payload)-stampLen:]
	binary.BigEndian.PutUint32(t, stampMagic)
	binary.BigEndian.PutUint64(t[4:], uint64(unixNano))
}

// readStamp returns the send time of a stamped payload.
func readStamp(payload []byte) (int64, bool) {
	if len(payload) < stampLen {
		return 0, false
	}
	t := payload[len(payload)-stampLen:]
	if binary.BigEndian.Uint32(t) != stampMagic {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(t[4:])), true
}

// seqTracker follows one stream's sequence numbers as RFC 3550 appendix A.1
// does: sequence numbers are extended past their 16-bit wrap, expected is the
// span from the first to the highest, and whatever in that span never arrived
// is lost. A window of recent numbers tells duplicates from late arrivals, so
// a retransmission that fills a gap counts and a second copy does not.
type seqTracker struct {
	started       bool
	base, highest int64 // extended sequence numbers
	unique        int64 // distinct packets in [base, highest]
	duplicates    int64
	late          int64                  // distinct packets that arrived after a higher one: reordered, or resent after a NACK
	seen          [seqWindow / 64]uint64 // bit (ext % seqWindow) is set when ext arrived
}

const seqWindow = 1024

// push records one arrival and reports whether it repeated an earlier one.
func (s *seqTracker) push(sn uint16) (duplicate bool) {
	if !s.started {
		s.started = true
		s.base = int64(sn) + 1<<32 // room to extend backwards without going negative
		s.highest = s.base
		s.unique = 1
		s.mark(s.base)
		return false
	}
	ext := s.highest + int64(int16(sn-uint16(s.highest)))
	switch {
	case ext > s.highest:
		if ext-s.highest >= seqWindow {
			s.seen = [seqWindow / 64]uint64{}
		} else {
			for e := s.highest + 1; e < ext; e++ {
				s.clear(e)
			}
		}
		s.highest = ext
	case s.highest-ext >= seqWindow:
		// Too old to tell from a duplicate; RFC 3550 counts it as received.
		s.unique++
		s.late++
		if ext < s.base {
			s.base = ext
		}
		return false
	case s.isMarked(ext) && ext >= s.base:
		s.duplicates++
		return true
	case ext < s.base:
		// Reordered ahead of the first packet we saw: the stream began earlier.
		for e := ext + 1; e < s.base; e++ {
			s.clear(e)
		}
		s.base = ext
		s.late++
	default:
		s.late++
	}
	s.mark(ext)
	s.unique++
	return false
}

func (s *seqTracker) mark(ext int64)          { s.seen[ext%seqWindow/64] |= 1 << (ext % 64) }
func (s *seqTracker) clear(ext int64)         { s.seen[ext%seqWindow/64] &^= 1 << (ext % 64) }
func (s *seqTracker) isMarked(ext int64) bool { return s.seen[ext%seqWindow/64]&(1<<(ext%64)) != 0 }

// expected is the number of packets from the first to the highest sequence
// number seen.
func (s *seqTracker) expected() int64 {
	if !s.started {
		return 0
	}
	return s.highest - s.base + 1
}

// jitterMeter is the RFC 3550 interarrival jitter estimate, in RTP clock units.
type jitterMeter struct {
	clockRate   float64
	started     bool
	lastTransit float64
	jitter      float64
}

// push records a packet with RTP timestamp ts that arrived at arrival (Unix
// nanoseconds). Packets of one video frame share a timestamp and are sent in
// a burst, as in browsers, which the estimate includes.
func (j *jitterMeter) push(ts uint32, arrival int64) {
	transit := float64(arrival)*j.clockRate/1e9 - float64(ts)
	if j.started {
		d := transit - j.lastTransit
		// The timestamp wraps every 13 hours at 90 kHz; a wrap looks like a
		// huge step and is ignored.
		if d < 1<<31 && d > -(1<<31) {
			j.jitter += (math.Abs(d) - j.jitter) / 16
		}
	}
	j.started = true
	j.lastTransit = transit
}

// Histogram counts non-negative values (microseconds here) in buckets that
// are exact below 64 and about 3% wide above, up to 2^32 (an hour and more
// in microseconds); larger values count in the last bucket. It is safe
// for one writer and any number of readers, and never allocates.
type Histogram struct {
	b [histBuckets]atomic.Uint64
}

const histBuckets = 64 + 26*32

func histIndex(v uint64) int {
	if v < 64 {
		return int(v)
	}
	e := bits.Len64(v) - 6 // v>>e is in [32, 64)
	i := 64 + (e-1)*32 + int(v>>e) - 32
	return min(i, histBuckets-1)
}

// histValue is the middle of bucket i.
func histValue(i int) float64 {
	if i < 64 {
		return float64(i)
	}
	e := (i-64)/32 + 1
	m := (i-64)%32 + 32
	return float64(uint64(m)<<e) + float64(uint64(1)<<e)/2
}

// Record adds one value.
func (h *Histogram) Record(v uint64) { h.b[histIndex(v)].Add(1) }

// Snapshot copies the counts.
func (h *Histogram) Snapshot() HistogramSnapshot {
	var s HistogramSnapshot
	for i := range h.b {
		s[i] = h.b[i].Load()
	}
	return s
}

// HistogramSnapshot is a Histogram's counts at one moment. Snapshots add and
// subtract, so that a window's distribution is the difference of two.
type HistogramSnapshot [histBuckets]uint64

// Add adds o's counts to s.
func (s *HistogramSnapshot) Add(o *HistogramSnapshot) {
	for i := range s {
		s[i] += o[i]
	}
}

// Sub removes o's counts, taken earlier from the same histogram, from s.
func (s *HistogramSnapshot) Sub(o *HistogramSnapshot) {
	for i := range s {
		s[i] -= o[i]
	}
}

// Count is the number of values.
func (s *HistogramSnapshot) Count() uint64 {
	var n uint64
	for _, c := range s {
		n += c
	}
	return n
}

// Quantile returns the value below which the fraction q of values lie (the
// middle of its bucket), or 0 with no values.
func (s *HistogramSnapshot) Quantile(q float64) float64 {
	n := s.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range s {
		seen += c
		if seen >= rank {
			return histValue(i)
		}
	}
	return histValue(histBuckets - 1)
}

// Mean is the average of the bucket values.
func (s *HistogramSnapshot) Mean() float64 {
	var n, sum float64
	for i, c := range s {
		n += float64(c)
		sum += float64(c) * histValue(i)
	}
	if n == 0 {
		return 0
	}
	return sum / n
}
