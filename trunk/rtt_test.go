package trunk

import (
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/rtc"
)

func TestShortUnits(t *testing.T) {
	if got := shortDuration(toShort(time.Second)); got != time.Second {
		t.Errorf("one second through 1/65536 s units = %v", got)
	}
}

func TestSRLogMeasuresWithLocalClock(t *testing.T) {
	t0 := time.Unix(5000, 0)
	var l srLog
	for i := range 6 {
		at := t0.Add(time.Duration(i) * time.Second)
		l.add(rtc.NTPCompact(rtc.NTPTime(at)), at)
	}
	lsr := rtc.NTPCompact(rtc.NTPTime(t0.Add(4 * time.Second)))
	got, ok := l.rtt(lsr, toShort(5*time.Millisecond), t0.Add(4*time.Second+15*time.Millisecond))
	if !ok || got < 10*time.Millisecond || got > 10*time.Millisecond+50*time.Microsecond {
		t.Errorf("rtt = %v %v, want about 10ms", got, ok)
	}
	if _, ok := l.rtt(0, 0, t0); ok {
		t.Error("an LSR of 0 (no report received yet) gave an RTT")
	}
	// Older than the log: the RFC arithmetic.
	lsr = rtc.NTPCompact(rtc.NTPTime(t0))
	got, ok = l.rtt(lsr, 0, t0.Add(20*time.Millisecond))
	if !ok || got < 19*time.Millisecond || got > 21*time.Millisecond {
		t.Errorf("fallback rtt = %v %v, want about 20ms", got, ok)
	}
}
