package rtc

import (
	"testing"
	"time"
)

func TestReportRTTExample(t *testing.T) {
	// RFC 3550 figure 2: A = 46864.500, LSR = 46853.125, DLSR = 5.250.
	arrival := time.Unix(46864-ntpEpochOffset, 500_000_000)
	if got := NTPCompact(NTPTime(arrival)); got != 0xb7108000 {
		t.Fatalf("A = %#x, want 0xb7108000", got)
	}
	if got, ok := ReportRTT(arrival, 0xb7052000, 0x00054000); !ok || got != 6125*time.Millisecond {
		t.Errorf("RTT = %v (%v), want 6.125s", got, ok)
	}
	if got, ok := ReportRTT(arrival, 0xb7108000+0x10000, 0); ok {
		t.Errorf("report from the future: RTT = %v, want none", got)
	}
}

func TestNTPTime(t *testing.T) {
	if got := NTPTime(time.Unix(0, 0)); got != ntpEpochOffset<<32 {
		t.Errorf("NTPTime(Unix epoch) = %#x", got)
	}
	if got := NTPTime(time.Unix(1, 500_000_000)) & 0xffffffff; got != 1<<31 {
		t.Errorf("half a second = %#x, want 0x80000000", got)
	}
}
