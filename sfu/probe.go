package sfu

import (
	"time"

	"go.uber.org/zap"
)

// prober finds out whether a subscriber's link can carry more than it is
// sent. GCC's estimate drifts upwards while a link is underused (it has no
// evidence either way), so on its own it would move a subscriber on a weak
// link up to a layer that then congests it. The allocator therefore spends
// at most what the link has been seen to carry: the confirmed rate. The
// prober raises it by sending padding so the link carries the rate an
// upgrade needs, for probeDuration; if GCC's overuse detector and loss stay
// quiet meanwhile, that rate is confirmed. Congestion lowers it to GCC's
// estimate.
type prober struct {
	on           bool
	d            *DownTrack
	until        time.Time
	target       int // the rate being tried, bit/s
	bytesPerTick int
	next         time.Time // no probe before this
	failures     int
	// confirmed is the rate a probe showed the link carries; only it
	// allows upgrades. assumed is what a link is taken to carry before
	// that, enough to start on: GCC's starting estimate until congestion
	// says otherwise.
	confirmed int
	assumed   int
}

// initialAssumed is what a new subscriber's link is assumed to carry before
// any probe.
const initialAssumed = 600_000

// start begins a probe towards target bit/s by padding d with rate bit/s.
func (pr *prober) start(now time.Time, d *DownTrack, target, rate int) {
	pr.on, pr.d, pr.until, pr.target = true, d, now.Add(probeDuration), target
	pr.bytesPerTick = rate / 8 * int(probeInterval) / int(time.Second)
}

// tick sends one interval's padding and judges the probe; it returns false
// once the probe is over.
func (pr *prober) tick(now time.Time, p *Participant) bool {
	if !pr.on {
		return false
	}
	if p.bwe.Congested() {
		pr.on = false
		pr.failures++
		// Back off, but not so far that a link that recovered waits long.
		pr.next = now.Add(min(probeCooldown<<pr.failures, 16*time.Second))
		p.log.Debug("probe failed", zap.Int("target", pr.target), zap.Int("estimate", p.bwe.TargetBitrate()))
		return false
	}
	if now.After(pr.until) {
		pr.on, pr.failures = false, 0
		pr.confirmed = max(pr.confirmed, pr.target)
		pr.next = now.Add(probeCooldown)
		p.log.Debug("probe succeeded", zap.Int("target", pr.target), zap.Int("estimate", p.bwe.TargetBitrate()))
		return false
	}
	for n := pr.bytesPerTick; n > 0; n -= 255 {
		if !pr.d.writePadding(min(n, 255)) {
			break
		}
	}
	return true
}

// estimates are what the allocator may spend: up bounds upgrades, keep what
// a subscriber may go on receiving. A probe's result is trusted over GCC,
// whose estimate lags behind a link that carries little (it may never grow
// past 1.5 times what is sent) and drifts up on one it cannot judge; GCC
// counts, capped by the starting assumption, until a probe has spoken.
// Congestion cuts both back to GCC's estimate.
func (pr *prober) estimates(p *Participant) (keep, up int) {
	if pr.assumed == 0 {
		pr.assumed = initialAssumed
	}
	gcc := p.bwe.TargetBitrate()
	if p.bwe.Congested() {
		pr.confirmed = min(pr.confirmed, gcc)
		pr.assumed = min(pr.assumed, gcc)
	}
	return max(min(gcc, pr.assumed), pr.confirmed), pr.confirmed
}
