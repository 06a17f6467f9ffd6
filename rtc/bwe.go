package rtc

import (
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Bandwidth estimate bounds for a subscriber connection. The estimate starts
// low enough that a weak link is not flooded before feedback arrives, and
// probing raises it from there.
const (
	bweInitial = 600_000
	bweMin     = 30_000
	bweMax     = 20_000_000
)

// Estimator is what a connection's TWCC feedback says of its downstream
// link: GCC's send-side estimate, and the link monitor's measurements.
type Estimator interface {
	// TargetBitrate is GCC's estimate in bit/s.
	TargetBitrate() int
	// Congested reports whether the link's packets fill a queue or more
	// than a tenth of them are lost.
	Congested() bool
	// Filling reports a queue the link is filling, before it amounts to
	// congestion: a probe stops there.
	Filling() bool
	// Delivered is the rate at which packets arrived lately, bit/s: while
	// Congested, what the link carries.
	Delivered() int
	// Stats are the estimator's internals, for debug logs.
	Stats() map[string]any
}

// API is the webrtc.API with a bandwidth estimator attached to every
// PeerConnection it makes.
type API struct {
	*webrtc.API

	mu       sync.Mutex // serializes NewPeerConnection so each call gets its own estimator
	lastGCC  cc.BandwidthEstimator
	lastLink *linkMonitor
}

// NewPeerConnection makes a PeerConnection and returns its estimator.
func (a *API) NewPeerConnection(cfg webrtc.Configuration) (*webrtc.PeerConnection, Estimator, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastGCC, a.lastLink = nil, nil
	pc, err := a.API.NewPeerConnection(cfg)
	if err != nil {
		return nil, nil, err
	}
	return pc, &estimator{gcc: a.lastGCC, link: a.lastLink}, nil
}

func (a *API) onNewGCC(_ string, est cc.BandwidthEstimator) { a.lastGCC = est }
func (a *API) onNewLink(m *linkMonitor)                     { a.lastLink = m }

// heavyLoss is the loss share above which a link counts as congested
// (GCC's loss controller also starts cutting there).
const heavyLoss = 0.1

// estimator combines GCC's target with what the link monitor measures.
// Either may be missing (the interceptor was not built), and then reports
// no limit and no congestion.
type estimator struct {
	gcc  cc.BandwidthEstimator
	link *linkMonitor
}

func (e *estimator) TargetBitrate() int {
	if e.gcc == nil {
		return bweMax
	}
	return e.gcc.GetTargetBitrate()
}

func (e *estimator) Congested() bool {
	return e.link != nil && e.link.state().Congested()
}

func (e *estimator) Filling() bool {
	return e.link != nil && e.link.state().Filling()
}

func (e *estimator) Delivered() int {
	if e.link == nil {
		return bweMax
	}
	if d := e.link.state().Delivered; d > 0 {
		return d
	}
	return e.TargetBitrate()
}

func (e *estimator) Stats() map[string]any {
	s := map[string]any{}
	if e.gcc != nil {
		s = e.gcc.GetStats()
	}
	if e.link != nil {
		st := e.link.state()
		s["queue"], s["loss"], s["delivered"], s["sent"] = st.Queue.String(), st.Loss, st.Delivered, st.Sent
		s["reportedLoss"], s["rtt"] = st.ReportedLoss, st.RTT.String()
	}
	return s
}

// newCongestionController builds the cc interceptor. Without pacing the
// packets go straight to the wire: the stream allocator keeps what is sent
// under the estimate, and Pion's leaky-bucket pacer costs four allocations
// per packet plus a 5 ms ticker per connection.
func newCongestionController(pace bool, logs zapLoggerFactory) (*cc.InterceptorFactory, error) {
	return cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		opts := []gcc.Option{
			gcc.SendSideBWEInitialBitrate(bweInitial),
			gcc.SendSideBWEMinBitrate(bweMin),
			gcc.SendSideBWEMaxBitrate(bweMax),
			gcc.WithLoggerFactory(logs),
		}
		if !pace {
			opts = append(opts, gcc.SendSideBWEPacer(&directPacer{}))
		}
		return gcc.NewSendSideBWE(opts...)
	})
}

// directPacer is a gcc.Pacer that does not pace: it hands each packet to its
// stream's writer at once, without a lock (gcc's own no-op pacer holds one
// mutex across every write of the connection).
type directPacer struct {
	mu      sync.Mutex // serializes AddStream
	writers atomic.Pointer[map[uint32]interceptor.RTPWriter]
}

func (p *directPacer) AddStream(ssrc uint32, w interceptor.RTPWriter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := map[uint32]interceptor.RTPWriter{ssrc: w}
	if old := p.writers.Load(); old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	p.writers.Store(&m)
}

func (p *directPacer) Write(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
	if m := p.writers.Load(); m != nil {
		if w, ok := (*m)[h.SSRC]; ok {
			return w.Write(h, payload, a)
		}
	}
	return 0, gcc.ErrUnknownStream
}

func (p *directPacer) SetTargetBitrate(int) {}
func (p *directPacer) Close() error         { return nil }
