package trunk

import "time"

// ntpEpochOffset is the number of seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

// ntpTime is t as a 32.32 fixed-point NTP timestamp.
func ntpTime(t time.Time) uint64 {
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

// ntpMiddle is the middle 32 bits of an NTP timestamp, the form RFC 3550 uses
// for LSR and for the arrival time in the RTT computation.
func ntpMiddle(ntp uint64) uint32 { return uint32(ntp >> 16) }

// shortDuration converts 1/65536 s units (DLSR) to a Duration.
func shortDuration(units uint32) time.Duration {
	return time.Duration(uint64(units) * uint64(time.Second) >> 16)
}

// toShort converts d to 1/65536 s units, rounding down.
func toShort(d time.Duration) uint32 {
	if d < 0 {
		return 0
	}
	return uint32(uint64(d) << 16 / uint64(time.Second))
}

// rfcRTT is RFC 3550 section 6.4.1: RTT = A - LSR - DLSR, in the middle 32
// bits of NTP time, where A is when the report arrived. Clock wraps cancel
// out in the unsigned arithmetic; a negative result (a bogus report) is 0.
func rfcRTT(arrival, lsr, dlsr uint32) time.Duration {
	d := int32(arrival - lsr - dlsr)
	if d < 0 {
		return 0
	}
	return shortDuration(uint32(d))
}

// srLog remembers when the last few sender reports went out, so that the
// RTT is measured with the local clock at full resolution; on a LAN the
// round trip is tens of microseconds, a few 1/65536 s units at best.
type srLog struct {
	sent [4]struct {
		lsr uint32
		at  time.Time
	}
	next int
}

func (l *srLog) add(lsr uint32, at time.Time) {
	l.sent[l.next].lsr = lsr
	l.sent[l.next].at = at
	l.next = (l.next + 1) % len(l.sent)
}

// rtt answers a reception report's LSR and DLSR; it falls back to the RFC
// arithmetic when the report answers a sender report it no longer knows.
func (l *srLog) rtt(lsr, dlsr uint32, now time.Time) (time.Duration, bool) {
	if lsr == 0 {
		// No sender report received yet by the other side.
		return 0, false
	}
	for _, s := range l.sent {
		if s.lsr == lsr && !s.at.IsZero() {
			d := now.Sub(s.at) - shortDuration(dlsr)
			if d <= 0 {
				// DLSR is rounded down, so this only happens with a bogus report.
				return 0, false
			}
			return d, true
		}
	}
	return rfcRTT(ntpMiddle(ntpTime(now)), lsr, dlsr), true
}
