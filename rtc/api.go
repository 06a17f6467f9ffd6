// Package rtc is the Pion plumbing of the SFU: the webrtc.API with its codecs,
// interceptors and ICE settings, and the pure per-packet pieces (keyframe
// detection, RTP rewriting, the retransmission cache) that the forwarding path
// is built from. It knows nothing of rooms or participants.
package rtc

import (
	"fmt"
	"strings"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// Config holds the network settings of every PeerConnection the server makes.
type Config struct {
	// UDPPortMin and UDPPortMax bound the UDP ports used for ICE; 0 and 0 let
	// the OS choose.
	UDPPortMin, UDPPortMax uint16
	// PublicIP is announced instead of the host address (1:1 NAT); empty for none.
	PublicIP string
	// Loopback also gathers 127.0.0.1 candidates, for tests on one machine.
	Loopback bool
	// Sockets, when set, carry every peer's ICE traffic (network.go).
	Sockets *Sockets
	// NoGSO and NoSendmmsg forbid those send paths (batch.go), for tests
	// and for a kernel or NIC that misbehaves with them.
	NoGSO, NoSendmmsg bool
}

const (
	nackInterval = 20 * time.Millisecond
	nackTries    = 25 // half a second of asking
)

// ICE timeouts chosen so that a peer whose network vanished is noticed well
// within the 10 s in which the others must be told.
const (
	iceDisconnectedTimeout = 4 * time.Second
	iceFailedTimeout       = 8 * time.Second
	iceKeepalive           = 2 * time.Second
)

// NewAPI builds the one API that makes every PeerConnection.
//
// Interceptors (see interceptors): a link monitor per subscriber connection
// (API.NewSubscriber returns it as the Estimator) fed by the subscriber's
// TWCC feedback; the NACK generator and TWCC feedback serve the upstream
// (the browser's own retransmissions and congestion control work against
// us); the TWCC header extension marks every downstream packet so
// subscribers' feedback can drive a bandwidth estimate; receiver reports
// go upstream and sender reports downstream. There
// is deliberately no NACK responder: downstream NACKs are answered by the SFU
// from one cache per published track instead of a copy of every packet per
// subscriber.
func NewAPI(cfg Config, log *zap.Logger) (*API, error) {
	me := &webrtc.MediaEngine{}
	if err := RegisterCodecs(me); err != nil {
		return nil, err
	}

	logs := zapLoggerFactory{log.Named("pion")}
	// TWCC's header extension and feedback are registered once; the
	// interceptors are made per connection (interceptors).
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, &interceptor.Registry{}); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureTWCCSenderWithOptions(me, &interceptor.Registry{}); err != nil {
		return nil, err
	}

	se := webrtc.SettingEngine{}
	se.SetICETimeouts(iceDisconnectedTimeout, iceFailedTimeout, iceKeepalive)
	// AES-GCM costs about a fifth of AES-CM+HMAC per packet; offer it first.
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	// The DTLS server chooses the profile. Answering as the server (the
	// publisher connection, where the browser offers) keeps the choice
	// ours; as a client Chrome picked AES-CM.
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		return nil, err
	}
	if err := configureICE(&se, cfg); err != nil {
		return nil, err
	}
	se.LoggerFactory = logs

	api := &API{me: me, se: se, logs: logs, sendPath: SendGSO}
	if cfg.NoGSO {
		api.sendPath = SendMmsg
	}
	if cfg.NoSendmmsg {
		api.sendPath = SendPlain
	}
	api.sendPath = api.SendPath()
	if cfg.Sockets != nil && cfg.Sockets.batcher != nil {
		api.shared = cfg.Sockets.batcher
		api.shared.path = api.sendPath // before any connection writes
	}
	log.Info("send path", zap.Stringer("path", api.sendPath))
	// Build the registries now, so that a bad option fails here rather
	// than at the first connection.
	for _, subscriber := range []bool{false, true} {
		if _, err := api.interceptors(&estimator{}, subscriber); err != nil {
			return nil, err
		}
	}
	return api, nil
}

// interceptors builds one connection's interceptor registry. A publisher
// connection only receives media: it asks for lost packets, reports
// reception and sends TWCC feedback. A subscriber connection only sends:
// sender reports, TWCC numbering, and the link monitor, which is handed to
// est. Each side leaves out the other's, so that nothing reads the
// subscribers' RTCP for sender reports that never come, nor numbers
// packets that are never sent. Per connection, so that each connection's
// estimator is known to be its own without serializing their creation.
func (a *API) interceptors(est *estimator, subscriber bool) (*interceptor.Registry, error) {
	ir := &interceptor.Registry{}
	if subscriber {
		sr, err := report.NewSenderInterceptor(report.WithSenderLoggerFactory(a.logs))
		if err != nil {
			return nil, err
		}
		ir.Add(sr)
		// The link monitor must see each packet after the TWCC header
		// extension interceptor numbered it, so it is registered first
		// (innermost).
		ir.Add(&monitorFactory{onNew: func(m *linkMonitor) { est.link = m }})
		hdr, err := twcc.NewHeaderExtensionInterceptor()
		if err != nil {
			return nil, err
		}
		ir.Add(hdr)
		return ir, nil
	}
	// Publishers' lost packets are asked for every 20 ms rather than Pion's
	// 100 ms: a frame waits for its missing packet, and at 100 ms the wait
	// alone makes a 20 fps viewer count a freeze. The browser answers one
	// NACK per packet and round trip, so asking often costs only NACKs.
	gen, err := nack.NewGeneratorInterceptor(nack.WithGeneratorLoggerFactory(a.logs),
		nack.GeneratorInterval(nackInterval), nack.GeneratorMaxNacksPerPacket(nackTries))
	if err != nil {
		return nil, err
	}
	ir.Add(gen)
	rr, err := report.NewReceiverInterceptor(report.WithReceiverLoggerFactory(a.logs))
	if err != nil {
		return nil, err
	}
	ir.Add(rr)
	fb, err := twcc.NewSenderInterceptor(twcc.SendInterval(100*time.Millisecond), twcc.WithLoggerFactory(a.logs))
	if err != nil {
		return nil, err
	}
	ir.Add(fb)
	return ir, nil
}

var videoFeedback = []webrtc.RTCPFeedback{
	{Type: "nack"},
	{Type: "nack", Parameter: "pli"},
	{Type: "ccm", Parameter: "fir"},
	{Type: webrtc.TypeRTCPFBTransportCC},
}

// Codecs are listed in order of preference: VP8 decodes everywhere, so it
// wins when a browser offers several.
var codecs = []struct {
	params webrtc.RTPCodecParameters
	kind   webrtc.RTPCodecType
}{
	{webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1", RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}}},
		PayloadType: 111}, webrtc.RTPCodecTypeAudio},
	{webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback},
		PayloadType:        96}, webrtc.RTPCodecTypeVideo},
	{webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000,
			SDPFmtpLine: "profile-id=0", RTCPFeedback: videoFeedback},
		PayloadType: 98}, webrtc.RTPCodecTypeVideo},
	{webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
			RTCPFeedback: videoFeedback},
		PayloadType: 102}, webrtc.RTPCodecTypeVideo},
	{webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
			RTCPFeedback: videoFeedback},
		PayloadType: 104}, webrtc.RTPCodecTypeVideo},
}

// RegisterCodecs registers the codecs and header extensions the SFU forwards.
func RegisterCodecs(me *webrtc.MediaEngine) error {
	for _, c := range codecs {
		if err := me.RegisterCodec(c.params, c.kind); err != nil {
			return fmt.Errorf("register %s: %w", c.params.MimeType, err)
		}
	}
	for _, uri := range []string{sdp.SDESMidURI, sdp.SDESRTPStreamIDURI, sdp.SDESRepairRTPStreamIDURI} {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
	}
	// Audio levels (RFC 6464) tell the server who speaks without decoding.
	for _, uri := range []string{sdp.SDESMidURI, sdp.AudioLevelURI} {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeAudio); err != nil {
			return err
		}
	}
	return nil
}

// CodecParameters returns the parameters the SFU registers for a codec,
// by MIME type (the first of several, for H.264); false if it has none.
// A track relayed from another node is described by its MIME type alone.
func CodecParameters(mime string) (webrtc.RTPCodecParameters, bool) {
	for _, c := range codecs {
		if strings.EqualFold(c.params.MimeType, mime) {
			return c.params, true
		}
	}
	return webrtc.RTPCodecParameters{}, false
}
