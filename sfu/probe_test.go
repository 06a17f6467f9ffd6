package sfu

import (
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/rtc"
)

// fakeEstimate is a bandwidth estimate the test sets.
type fakeEstimate struct {
	target, delivered  int
	congested, filling bool
}

func (f *fakeEstimate) Snapshot() rtc.Estimate {
	return rtc.Estimate{Target: f.target, Congested: f.congested, Filling: f.filling, Delivered: f.delivered}
}
func (f *fakeEstimate) Stats() map[string]any { return nil }

// runProbe ticks a probe towards 1,000,000 bit/s (400,000 of it padding)
// until it ends, calling each before every tick, and returns how it ended,
// the padding it sent per tick, and when it ended.
func runProbe(t *testing.T, pr *prober, est *fakeEstimate, now time.Time, each func(tick int)) (probeResult, []int, time.Time) {
	t.Helper()
	var padded []int
	pr.start(now, func(n int) bool { padded[len(padded)-1] += n; return true }, 1_000_000, 400_000)
	for i := 0; ; i++ {
		now = now.Add(probeInterval)
		if each != nil {
			each(i)
		}
		padded = append(padded, 0)
		if r := pr.tick(now, est); r != probeRunning {
			return r, padded, now
		}
		if i > 1000 {
			t.Fatal("probe never ended")
		}
	}
}

func TestProbeConfirmsWhatTheLinkCarried(t *testing.T) {
	est := &fakeEstimate{target: 700_000, delivered: 950_000}
	var pr prober
	keep, up := pr.estimates(est)
	if keep != 600_000 || up != 0 {
		t.Fatalf("before any probe: keep %d up %d, want the 600k start assumption and no upgrades", keep, up)
	}
	r, padded, _ := runProbe(t, &pr, est, time.Unix(0, 0), nil)
	if r != probeSucceeded {
		t.Fatalf("probe on a quiet link: %v, want success", r)
	}
	// The padding ramps up to 400 kbit/s (1,000 bytes a tick) over a
	// second, then holds.
	total := 0
	for _, n := range padded {
		total += n
	}
	if want := 400_000 / 8; total < want*9/10 || total > want*11/10 {
		t.Errorf("padded %d bytes, want about %d", total, want)
	}
	if first, last := padded[0], padded[len(padded)-2]; first > 100 || last < 900 || last > 1100 {
		t.Errorf("padding per tick went from %d to %d bytes, want a ramp from ~0 to 1,000", first, last)
	}
	if keep, up = pr.estimates(est); up != 1_000_000 || keep != 1_000_000 {
		t.Errorf("after the probe: keep %d up %d, want the probed 1,000,000", keep, up)
	}
}

func TestProbeFailsOnCongestionAndBacksOff(t *testing.T) {
	est := &fakeEstimate{target: 300_000, delivered: 1_000_000}
	var pr prober
	now := time.Unix(0, 0)
	var waits []time.Duration
	for range 3 {
		r, _, end := runProbe(t, &pr, est, now, func(i int) { est.congested = i == 5 })
		if r != probeFailed {
			t.Fatalf("probe through congestion: %v, want failure", r)
		}
		waits = append(waits, pr.next.Sub(end))
		now = pr.next
	}
	if waits[0] != 3*time.Second || waits[1] != 6*time.Second || waits[2] != 6*time.Second {
		t.Errorf("waits after failures %v, want 3s, 6s, 6s", waits)
	}
	if pr.confirmed >= 1_000_000 {
		t.Errorf("failed probes confirmed %d", pr.confirmed)
	}
	// A queue the link is filling stops a probe too.
	est.congested = false
	if r, _, _ := runProbe(t, &pr, est, now, func(i int) { est.filling = i == 5 }); r != probeFailed {
		t.Errorf("probe that filled a queue: %v, want failure", r)
	}
	now, est.filling = pr.next, false
	// A success resets the back-off.
	est.congested = false
	if r, _, end := runProbe(t, &pr, est, now, nil); r != probeSucceeded || pr.next.Sub(end) != probeAfterSuccess {
		t.Errorf("probe after failures: %v, next in %v", r, pr.next.Sub(end))
	}
}

// A link that quietly drops what it cannot carry (a full drop-tail queue:
// no queue growth to see) is found out by what arrives.
func TestProbeFailsWhenLessArrives(t *testing.T) {
	est := &fakeEstimate{target: 380_000, delivered: 600_000}
	var pr prober
	if r, _, _ := runProbe(t, &pr, est, time.Unix(0, 0), nil); r != probeFailed {
		t.Fatalf("probe for 1,000,000 that delivered 600,000: %v, want failure", r)
	}
	if pr.confirmed != 0 {
		t.Errorf("confirmed %d after a failed probe", pr.confirmed)
	}
}

func TestCongestionKeepsWhatTheLinkDelivers(t *testing.T) {
	est := &fakeEstimate{target: 3_000_000, delivered: 1_000_000}
	var pr prober
	if r, _, _ := runProbe(t, &pr, est, time.Unix(0, 0), nil); r != probeSucceeded {
		t.Fatal("probe failed")
	}
	// A queue on a link that carries everything sent (1,000,000): the
	// confirmed rate stands.
	est.congested, est.target = true, 700_000
	if keep, _ := pr.estimates(est); keep != 1_000_000 {
		t.Errorf("queue on a full link: keep %d, want the 1,000,000 delivered", keep)
	}
	// A link narrower than what is sent delivers less.
	est.target, est.delivered = 255_000, 300_000
	keep, up := pr.estimates(est)
	if keep != 300_000 || up != 300_000 {
		t.Errorf("narrow link: keep %d up %d, want 300,000", keep, up)
	}
	// Once the congestion is over GCC's estimate counts only up to that.
	est.congested, est.target = false, 900_000
	if keep, _ := pr.estimates(est); keep != 300_000 {
		t.Errorf("after congestion: keep %d, want 300,000 until a probe says more", keep)
	}
}
