package rtc

import "time"

// NTP time as RTCP carries it (RFC 3550 section 4), for sender reports and
// the round trips that reception reports give.

// ntpEpochOffset is the number of seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

// NTPTime is t as a 64-bit NTP timestamp, 32.32 fixed point: a sender
// report's NTPTime.
func NTPTime(t time.Time) uint64 {
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

// NTPCompact is the middle 32 bits of an NTP timestamp (seconds and
// 1/65536 s): the form of a reception report's LSR.
func NTPCompact(ntp uint64) uint32 { return uint32(ntp >> 16) }

// ReportRTT is RFC 3550 section 6.4.1's round trip for a reception report
// that arrived at arrival: A - LSR - DLSR. Clock wraps cancel out in the
// unsigned arithmetic; a report that gives less than 0 or 16 s or more is
// garbage (false).
func ReportRTT(arrival time.Time, lsr, dlsr uint32) (time.Duration, bool) {
	d := NTPCompact(NTPTime(arrival)) - lsr - dlsr
	if d >= 1<<20 {
		return 0, false
	}
	return time.Duration(d) * time.Second / 65536, true
}
