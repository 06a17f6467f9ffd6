package sfu

import (
	"time"

	"github.com/switchboard-sfu/switchboard/rtc"
)

// prober finds out whether a subscriber's link can carry more than it is
// sent. A delay-based estimate (GCC's) drifts upwards while a link is
// underused (it has no evidence either way), so on its own it would move a
// subscriber on a weak link up to a layer that then congests it. The
// allocator therefore spends
// at most what the link has been seen to carry: the confirmed rate. The
// prober raises it by sending padding so the link carries the rate an
// upgrade needs, for probeDuration; if the link shows no congestion
// meanwhile (no queue it is filling, no heavy loss) and delivers about that
// rate, it is confirmed. The
// padding ramps up over probeRamp, so that on a link narrower than the
// probe the queue grows slowly and is noticed before it overflows: a probe
// must not cost the media it rides with.
//
// Congestion sets the confirmed rate to what the link delivered. On a link
// that is too narrow that is less than is sent, and the allocator steps
// down; on a full link whose delay merely jittered (a busy receiver) it is
// about what is sent, and nothing changes.
type prober struct {
	on           bool
	pad          func(bytes int) bool
	started      time.Time
	until        time.Time
	target       int       // the rate being tried, bit/s
	bytesPerTick int       // once ramped up
	next         time.Time // no probe before this
	failures     int
	// confirmed is the rate the link was shown to carry; only it allows
	// upgrades. assumed is what a link is taken to carry before that,
	// enough to start on: rtc.InitialEstimate until congestion says
	// otherwise.
	confirmed int
	assumed   int
}

const (
	probeRamp = time.Second
	// probeDelivered is the share of a probe's rate that must arrive.
	// It is a sanity check (the padding went out and arrived): a queue or
	// loss is what shows a link too narrow, and rates measured over half a
	// second of arrivals are noisy.
	probeDelivered = 0.75
	// Padding is overhead: after a probe that confirmed its rate the next
	// may follow soon (the allocator climbs in steps), after one that
	// failed the link is left alone for a while, longer each time.
	probeAfterSuccess = 500 * time.Millisecond
	probeAfterFailure = 3 * time.Second
	maxProbeBackoff   = 6 * time.Second
)

// start begins a probe towards target bit/s by calling pad with rate bit/s
// worth of padding.
func (pr *prober) start(now time.Time, pad func(bytes int) bool, target, rate int) {
	pr.on, pr.pad, pr.started, pr.until, pr.target = true, pad, now, now.Add(probeDuration), target
	pr.bytesPerTick = rate / 8 * int(probeInterval) / int(time.Second)
}

// probeResult is what one probe tick found.
type probeResult int

const (
	probeRunning probeResult = iota
	probeSucceeded
	probeFailed
)

// tick sends one interval's padding and judges the probe.
func (pr *prober) tick(now time.Time, e rtc.Estimator) probeResult {
	if !pr.on {
		return probeFailed
	}
	est := e.Snapshot()
	fail := func() probeResult {
		pr.on, pr.pad = false, nil
		pr.failures++
		pr.next = now.Add(min(probeAfterFailure<<(pr.failures-1), maxProbeBackoff))
		return probeFailed
	}
	if est.Congested || est.Filling {
		return fail()
	}
	if now.After(pr.until) {
		if float64(est.Delivered) < probeDelivered*float64(pr.target) {
			return fail()
		}
		pr.on, pr.pad, pr.failures = false, nil, 0
		pr.confirmed = max(pr.confirmed, pr.target)
		pr.next = now.Add(probeAfterSuccess)
		return probeSucceeded
	}
	ramp := min(1, float64(now.Sub(pr.started))/float64(probeRamp))
	for n := int(ramp * float64(pr.bytesPerTick)); n > 0; n -= 255 {
		if !pr.pad(min(n, 255)) {
			break
		}
	}
	return probeRunning
}

// estimates are what the allocator may spend: up bounds upgrades, keep what
// a subscriber may go on receiving: the starting assumption, lowered by
// congestion to what the link delivered, until a probe confirms more.
func (pr *prober) estimates(e rtc.Estimator) (keep, up int) {
	est := e.Snapshot()
	if pr.assumed == 0 {
		pr.assumed = rtc.InitialEstimate
	}
	if est.Congested {
		// A congested link carries what it delivers, no more, no less.
		delivered := est.Delivered
		pr.confirmed = delivered
		pr.assumed = min(pr.assumed, delivered)
	}
	return max(pr.assumed, pr.confirmed), pr.confirmed
}
