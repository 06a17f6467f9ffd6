package main

import (
	"io"
	"math/rand/v2"
	"net"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// lossyAPI is the Pion API of client.NewAPI (the same interceptors: NACK,
// RTCP reports, simulcast header extensions, TWCC) with one more in front
// of them that discards a share of the RTP arriving, as a lossy link does.
// client.Options.Drop discards after the interceptors, so its losses are
// never asked for again; these are, so viewers send the server a steady
// storm of NACKs and its retransmission path works all the time.
func lossyAPI(loss float64, loopbackOnly bool) (*webrtc.API, error) {
	logs := &logging.DefaultLoggerFactory{Writer: io.Discard}
	se := webrtc.SettingEngine{LoggerFactory: logs}
	se.SetIncludeLoopbackCandidate(true)
	// Here a packet is lost after SRTP has decrypted it, so SRTP's replay
	// window has seen its number and would discard the retransmission as
	// a replay: the NACKs would repeat for ever and the server's feedback
	// would count every retransmission lost too. On a real link the loss
	// comes first and the window never sees the packet.
	se.DisableSRTPReplayProtection(true)
	if loopbackOnly {
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	// The first interceptor added reads the network first: what it drops
	// the NACK generator after it sees as a gap.
	ir.Add(lossFactory(loss))
	if err := webrtc.ConfigureNackWithOptions(me, ir, []nack.GeneratorOption{nack.WithGeneratorLoggerFactory(logs)},
		nack.WithResponderLoggerFactory(logs)); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureTWCCSender(me, ir); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, ir); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// lossFactory makes interceptors that drop this share of incoming RTP.
type lossFactory float64

func (f lossFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &lossInterceptor{share: float64(f)}, nil
}

type lossInterceptor struct {
	interceptor.NoOp
	share float64
}

// BindRemoteStream wraps each received stream; one goroutine reads a
// stream, so each has its own random source.
func (l *lossInterceptor) BindRemoteStream(_ *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	if l.share <= 0 {
		return reader
	}
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := reader.Read(b, a)
			if err != nil || rng.Float64() >= l.share {
				return n, attr, err
			}
		}
	})
}
