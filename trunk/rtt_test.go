package trunk

import (
	"testing"
	"time"
)

func TestRFCRTTExample(t *testing.T) {
	// RFC 3550 figure 2: A = 46864.500, LSR = 46853.125, DLSR = 5.250.
	if got := rfcRTT(0xb7108000, 0xb7052000, 0x00054000); got != 6125*time.Millisecond {
		t.Errorf("RTT = %v, want 6.125s", got)
	}
	if got := rfcRTT(0xb7052000, 0xb7108000, 0); got != 0 {
		t.Errorf("report from the future: RTT = %v, want 0", got)
	}
}

func TestNTPTime(t *testing.T) {
	if got := ntpTime(time.Unix(0, 0)); got != ntpEpochOffset<<32 {
		t.Errorf("ntpTime(Unix epoch) = %#x", got)
	}
	if got := ntpTime(time.Unix(1, 500_000_000)) & 0xffffffff; got != 1<<31 {
		t.Errorf("half a second = %#x, want 0x80000000", got)
	}
	if got := shortDuration(toShort(time.Second)); got != time.Second {
		t.Errorf("one second through 1/65536 s units = %v", got)
	}
}

func TestSRLogMeasuresWithLocalClock(t *testing.T) {
	t0 := time.Unix(5000, 0)
	var l srLog
	for i := range 6 {
		at := t0.Add(time.Duration(i) * time.Second)
		l.add(ntpMiddle(ntpTime(at)), at)
	}
	lsr := ntpMiddle(ntpTime(t0.Add(4 * time.Second)))
	got, ok := l.rtt(lsr, toShort(5*time.Millisecond), t0.Add(4*time.Second+15*time.Millisecond))
	if !ok || got < 10*time.Millisecond || got > 10*time.Millisecond+50*time.Microsecond {
		t.Errorf("rtt = %v %v, want about 10ms", got, ok)
	}
	if _, ok := l.rtt(0, 0, t0); ok {
		t.Error("an LSR of 0 (no report received yet) gave an RTT")
	}
	// Older than the log: the RFC arithmetic.
	lsr = ntpMiddle(ntpTime(t0))
	got, ok = l.rtt(lsr, 0, t0.Add(20*time.Millisecond))
	if !ok || got < 19*time.Millisecond || got > 21*time.Millisecond {
		t.Errorf("fallback rtt = %v %v, want about 20ms", got, ok)
	}
}
