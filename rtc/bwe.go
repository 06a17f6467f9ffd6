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

// Estimator is a connection's send-side bandwidth estimate (GCC over TWCC
// feedback, refined by loss).
type Estimator interface {
	// TargetBitrate is the estimate in bit/s.
	TargetBitrate() int
	// Congested reports whether the last feedback showed the link
	// overused (queues growing) or losing more than a tenth of the packets.
	Congested() bool
	// Stats are the estimator's internals, for debug logs.
	Stats() map[string]any
}

// API is the webrtc.API with a bandwidth estimator attached to every
// PeerConnection it makes.
type API struct {
	*webrtc.API

	mu   sync.Mutex // serializes NewPeerConnection so each call gets its own estimator
	last cc.BandwidthEstimator
}

// NewPeerConnection makes a PeerConnection and returns its estimator.
func (a *API) NewPeerConnection(cfg webrtc.Configuration) (*webrtc.PeerConnection, Estimator, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = nil
	pc, err := a.API.NewPeerConnection(cfg)
	if err != nil {
		return nil, nil, err
	}
	est := a.last
	if est == nil { // the cc interceptor was not built: report no limit
		return pc, fixedEstimate(bweMax), nil
	}
	return pc, gccEstimator{est}, nil
}

func (a *API) onNewPeerConnection(_ string, est cc.BandwidthEstimator) { a.last = est }

type gccEstimator struct{ cc.BandwidthEstimator }

func (g gccEstimator) TargetBitrate() int    { return g.GetTargetBitrate() }
func (g gccEstimator) Stats() map[string]any { return g.GetStats() }

func (g gccEstimator) Congested() bool {
	s := g.GetStats()
	loss, _ := s["averageLoss"].(float64)
	return s["usage"] == "overuse" || loss > 0.1
}

type fixedEstimate int

func (f fixedEstimate) TargetBitrate() int    { return int(f) }
func (f fixedEstimate) Stats() map[string]any { return nil }
func (f fixedEstimate) Congested() bool       { return false }

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
