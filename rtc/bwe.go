package rtc

import (
	"github.com/pion/webrtc/v4"
)

// Bandwidth estimate bounds for a subscriber connection. The estimate starts
// low enough that a weak link is not flooded before feedback arrives, and
// probing raises it from there.
const (
	// InitialEstimate is what a new subscriber's link is assumed to carry
	// before any feedback or probe.
	InitialEstimate = 600_000
	bweMax          = 20_000_000
)

// Estimator is what a connection's TWCC feedback says of its downstream
// link: the link monitor's measurements.
type Estimator interface {
	// Snapshot is the estimate now, from one look at the feedback history.
	Snapshot() Estimate
	// Stats are the estimator's internals, for debug logs.
	Stats() map[string]any
}

// Estimate is an Estimator's view at one instant.
type Estimate struct {
	// Target is the rate the link was seen to carry lately, bit/s
	// (InitialEstimate before feedback), for metrics and logs: the
	// allocator spends by the prober's confirmed rate instead.
	Target int
	// Congested reports whether the link's packets fill a queue or more
	// than a tenth of them are lost.
	Congested bool
	// Filling reports a queue the link is filling, before it amounts to
	// congestion: a probe stops there.
	Filling bool
	// Delivered is the rate at which packets arrived lately, bit/s: while
	// Congested, what the link carries.
	Delivered int
}

// API makes the server's PeerConnections, each with its interceptors and a
// bandwidth estimator of its own.
type API struct {
	me   *webrtc.MediaEngine
	se   webrtc.SettingEngine
	logs zapLoggerFactory
	// shared batches the single UDP port's writes; nil in port-range
	// mode, where each connection's sockets get a Batcher of their own.
	shared   *Batcher
	sendPath SendPath
}

// NewPublisher makes the PeerConnection a participant publishes on: it
// receives media and sends only RTCP, unbatched.
func (a *API) NewPublisher(cfg webrtc.Configuration) (*webrtc.PeerConnection, error) {
	ir, err := a.interceptors(nil, false)
	if err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(a.me), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(a.se)).NewPeerConnection(cfg)
}

// NewSubscriber makes the PeerConnection a participant receives on, and
// returns its estimator and the Batcher its UDP writes go through: a
// forwarding pass holds it.
func (a *API) NewSubscriber(cfg webrtc.Configuration) (*webrtc.PeerConnection, Estimator, *Batcher, error) {
	est := &estimator{}
	ir, err := a.interceptors(est, true)
	if err != nil {
		return nil, nil, nil, err
	}
	se, b := a.se, a.shared
	if b == nil {
		b = NewBatcher(a.sendPath)
		n, err := newBatchNet(b)
		if err != nil {
			return nil, nil, nil, err
		}
		se.SetNet(n)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(a.me), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(se)).NewPeerConnection(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return pc, est, b, nil
}

// SendPath is how the API's connections hand datagrams to the kernel.
func (a *API) SendPath() SendPath { return min(a.sendPath, KernelSendPath()) }

// heavyLoss is the loss share above which a link counts as congested
// (where GCC's loss controller starts cutting too).
const heavyLoss = 0.1

// estimator is the link monitor's view. Without one (the interceptor was
// not built) it reports no limit and no congestion.
//
// There is no GCC: the allocator never spent by its estimate (the prober's
// confirmed rate bounds upgrades, congestion seen by the link monitor cuts
// down), and feeding it cost a lock, a history entry and a pacer hop per
// packet sent.
type estimator struct {
	link *linkMonitor
}

func (e *estimator) Snapshot() Estimate {
	if e.link == nil {
		return Estimate{Target: bweMax, Delivered: bweMax}
	}
	st := e.link.state()
	est := Estimate{Congested: st.Congested(), Filling: st.Filling(), Delivered: st.Delivered}
	if est.Delivered <= 0 {
		// Unknown (no feedback yet, or a receiver without TWCC): what a
		// link is assumed to carry before it shows more, as GCC's
		// estimate stayed without feedback.
		est.Delivered = InitialEstimate
	}
	est.Target = est.Delivered
	return est
}

func (e *estimator) Stats() map[string]any {
	s := map[string]any{}
	if e.link != nil {
		st := e.link.state()
		s["queue"], s["loss"], s["delivered"], s["sent"] = st.Queue.String(), st.Loss, st.Delivered, st.Sent
		s["reportedLoss"], s["rtt"] = st.ReportedLoss, st.RTT.String()
	}
	return s
}
