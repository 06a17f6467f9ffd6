package trunk

import (
	"time"

	"github.com/switchboard-sfu/switchboard/rtc"
)

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
	return rtc.ReportRTT(now, lsr, dlsr)
}
