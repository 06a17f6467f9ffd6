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
	// InitialEstimate is what a new subscriber's link is assumed to carry
	// before any feedback or probe.
	InitialEstimate = 600_000
	bweMin          = 30_000
	bweMax          = 20_000_000
)

// Estimator is what a connection's TWCC feedback says of its downstream
// link: GCC's send-side estimate, and the link monitor's measurements.
type Estimator interface {
	// Snapshot is the estimate now, from one look at the feedback history.
	Snapshot() Estimate
	// Stats are the estimator's internals, for debug logs.
	Stats() map[string]any
}

// Estimate is an Estimator's view at one instant.
type Estimate struct {
	// Target is GCC's estimate in bit/s.
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
	pace bool
	logs zapLoggerFactory
	// shared batches the single UDP port's writes; nil in port-range
	// mode, where each connection's sockets get a Batcher of their own.
	shared   *Batcher
	sendPath SendPath
}

// NewPeerConnection makes a PeerConnection and returns its estimator and
// the Batcher its UDP writes go through: a forwarding pass holds it.
func (a *API) NewPeerConnection(cfg webrtc.Configuration) (*webrtc.PeerConnection, Estimator, *Batcher, error) {
	est := &estimator{}
	ir, err := a.interceptors(est)
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
// (GCC's loss controller also starts cutting there).
const heavyLoss = 0.1

// estimator combines GCC's target with what the link monitor measures.
// Either may be missing (the interceptor was not built), and then reports
// no limit and no congestion.
type estimator struct {
	gcc  cc.BandwidthEstimator
	link *linkMonitor
}

func (e *estimator) Snapshot() Estimate {
	est := Estimate{Target: bweMax, Delivered: bweMax}
	if e.gcc != nil {
		est.Target = e.gcc.GetTargetBitrate()
	}
	if e.link == nil {
		return est
	}
	st := e.link.state()
	est.Congested, est.Filling, est.Delivered = st.Congested(), st.Filling(), st.Delivered
	if est.Delivered <= 0 {
		est.Delivered = est.Target
	}
	return est
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
			gcc.SendSideBWEInitialBitrate(InitialEstimate),
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
