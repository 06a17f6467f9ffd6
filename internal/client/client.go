// Package client is a Go implementation of the Switchboard browser client on
// Pion: it joins a room over the signaling WebSocket, publishes synthetic
// VP8 video and Opus-sized audio, and counts what it receives from everyone
// else. Integration tests and the synthetic load generator use it.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Options configure a client.
type Options struct {
	// Publish sends synthetic audio and video; false makes a viewer.
	Publish bool
	// VideoBitrate in bit/s (default 500k) and FPS (default 30) of the
	// synthetic video; with Simulcast, of its full layer.
	VideoBitrate int
	FPS          int
	// KeyframeInterval between unrequested keyframes (default 2 s).
	KeyframeInterval time.Duration
	// Simulcast publishes the video as the web client does: three layers
	// with rids q, h and f (320x180, 640x360, 1280x720) at a tenth, three
	// tenths and all of VideoBitrate, each with L1T3 temporal layers; the
	// client follows the server's publish-layers.
	Simulcast bool
	// Token is the join token, for servers that require one.
	Token string
	// Avoid, in the join, names a cluster node the client could not reach;
	// Ticket is what a redirect gave (RedirectError).
	Avoid, Ticket string
	// Speaking marks every audio packet as loud voice (RFC 6464 level 20
	// dBov), so that the server ranks the client among the speakers.
	Speaking bool
	// Drop discards this fraction of the received packets after the
	// interceptors saw them and before they are counted: a known impairment
	// for testing the measurements.
	Drop float64
}

// Message is a signaling message as the client sees it.
type Message struct {
	Type         string                   `json:"type"`
	Room         string                   `json:"room,omitempty"`
	Name         string                   `json:"name,omitempty"`
	Token        string                   `json:"token,omitempty"`
	Target       string                   `json:"target,omitempty"`
	SDP          string                   `json:"sdp,omitempty"`
	Candidate    *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	Code         string                   `json:"code,omitempty"`
	Message      string                   `json:"message,omitempty"`
	You          *Participant             `json:"you,omitempty"`
	Participant  *Participant             `json:"participant,omitempty"`
	Participants []Participant            `json:"participants,omitempty"`
	Track        *Track                   `json:"track,omitempty"`
	// redirect and draining: another node of the cluster; join: one to avoid
	URL    string `json:"url,omitempty"`
	Node   string `json:"node,omitempty"`
	Avoid  string `json:"avoid,omitempty"`
	Ticket string `json:"ticket,omitempty"`
	// track-settings (sent) and stream-state (received)
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	Layer  string `json:"layer,omitempty"`
	// speakers
	Speakers []Speaker `json:"speakers,omitempty"`
	// publish-layers
	TrackID string   `json:"trackId,omitempty"`
	Mid     string   `json:"mid,omitempty"`
	Active  []string `json:"active,omitempty"`
}

// Participant as in the protocol.
type Participant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Speaker is one active speaker of a speakers message.
type Speaker struct {
	Participant string  `json:"participant"`
	Level       float64 `json:"level"`
}

// Track as in the protocol.
type Track struct {
	ID          string `json:"id"`
	Participant string `json:"participant"`
	Kind        string `json:"kind"`
	Codec       string `json:"codec"`
	Muted       bool   `json:"muted"`
}

// Client is one participant.
type Client struct {
	ID   string
	Node string // the cluster node it joined, from joined.node

	opts     Options
	ws       *websocket.Conn
	pub, sub *webrtc.PeerConnection
	video    []*layer // one per simulcast layer
	videoMid atomic.Pointer[string]
	audio    *webrtc.TrackLocalStaticRTP
	// audioSender is the audio's sender, for its negotiated extensions.
	audioSender *webrtc.RTPSender
	keyframe    atomic.Bool // a keyframe was asked for

	pubUp, subUp chan struct{} // closed when each PeerConnection first connects
	gone         chan struct{} // closed when the signaling connection ends

	// Messages gets every server message except SDP and candidates, for tests
	// to wait on; it is never closed, and overflow is dropped.
	Messages chan Message

	mu       sync.Mutex
	received map[string]*Received // by track id
	pubCands []webrtc.ICECandidateInit
	subCands []webrtc.ICECandidateInit
	writeMu  sync.Mutex
	data     dataState // room data (data.go)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// APIOption changes the API that NewAPI builds.
type APIOption func(*apiConfig)

type apiConfig struct {
	se   webrtc.SettingEngine
	logs logging.LoggerFactory // nil: Pion's default (stderr)
}

// LoopbackOnly gathers only loopback ICE candidates and never queries mDNS,
// so that a client on the server's host sends nothing off the machine.
func LoopbackOnly() APIOption {
	return func(c *apiConfig) {
		c.se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		c.se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
}

// PionLogs sends the logs of Pion and its interceptors to lf instead of
// stderr.
func PionLogs(lf logging.LoggerFactory) APIOption {
	return func(c *apiConfig) { c.logs = lf }
}

// registerInterceptors registers what a browser's RTP stack does: NACKs
// and retransmissions, RTCP sender and receiver reports, the simulcast
// header extensions, TWCC feedback on what arrives and TWCC sequence numbers
// on what leaves. (It is Pion's RegisterDefaultInterceptors without the
// stats interceptor, a tenth of a load client's CPU.)
func registerInterceptors(me *webrtc.MediaEngine, ir *interceptor.Registry, logs logging.LoggerFactory) error {
	var (
		gen  []nack.GeneratorOption
		resp []nack.ResponderOption
		recv []report.ReceiverOption
		send []report.SenderOption
		tw   []twcc.Option
	)
	if logs != nil {
		gen = append(gen, nack.WithGeneratorLoggerFactory(logs))
		resp = append(resp, nack.WithResponderLoggerFactory(logs))
		recv = append(recv, report.WithReceiverLoggerFactory(logs))
		send = append(send, report.WithSenderLoggerFactory(logs))
		tw = append(tw, twcc.WithLoggerFactory(logs))
	}
	if err := webrtc.ConfigureNackWithOptions(me, ir, gen, resp...); err != nil {
		return err
	}
	if err := webrtc.ConfigureRTCPReportsWithOptions(ir, recv, send...); err != nil {
		return err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return err
	}
	if err := webrtc.ConfigureTWCCSenderWithOptions(me, ir, tw...); err != nil {
		return err
	}
	return webrtc.ConfigureTWCCHeaderExtensionSender(me, ir)
}

// NewAPI returns the Pion API clients use: default codecs and interceptors
// (NACK, RTCP reports, TWCC feedback, as a browser answers), TWCC sequence
// numbers on what they send, loopback candidates on (clients run on the
// server's machine).
func NewAPI(opts ...APIOption) (*webrtc.API, error) {
	var c apiConfig
	c.se.SetIncludeLoopbackCandidate(true)
	for _, o := range opts {
		o(&c)
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	// Audio levels (RFC 6464), which the client sends with Options.Speaking.
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if c.logs != nil {
		c.se.LoggerFactory = c.logs
	}
	if err := registerInterceptors(me, ir, c.logs); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(c.se)), nil
}

// Join connects to wsURL (ws://host:port/ws), joins room as name, and
// publishes if asked. It returns once the server has answered the join.
func Join(ctx context.Context, api *webrtc.API, wsURL, room, name string, opts Options) (*Client, error) {
	if opts.VideoBitrate == 0 {
		opts.VideoBitrate = 500_000
	}
	if opts.FPS == 0 {
		opts.FPS = 30
	}
	if opts.KeyframeInterval == 0 {
		opts.KeyframeInterval = 2 * time.Second
	}
	ws, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		return nil, err
	}
	c := &Client{opts: opts, ws: ws, Messages: make(chan Message, 256), received: map[string]*Received{},
		pubUp: make(chan struct{}), subUp: make(chan struct{}), gone: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.setup(ctx, api, room, name); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// RedirectError is Join's error when the server sent the join to another
// node of its cluster.
type RedirectError struct{ URL, Node, Ticket string }

func (e *RedirectError) Error() string { return "redirected to " + e.Node + " at " + e.URL }

// WebSocketURL is the signaling URL of the node at the page URL u
// (http://host/ → ws://host/ws).
func (e *RedirectError) WebSocketURL() string {
	u := strings.TrimSuffix(e.URL, "/")
	if rest, ok := strings.CutPrefix(u, "https://"); ok {
		return "wss://" + rest + "/ws"
	}
	return "ws://" + strings.TrimPrefix(u, "http://") + "/ws"
}

func (c *Client) setup(ctx context.Context, api *webrtc.API, room, name string) error {
	var err error
	if c.pub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return err
	}
	if c.sub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return err
	}
	for target, pc := range map[string]*webrtc.PeerConnection{"publisher": c.pub, "subscriber": c.sub} {
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand != nil {
				init := cand.ToJSON()
				_ = c.Send(Message{Type: "candidate", Target: target, Candidate: &init})
			}
		})
		up := c.pubUp
		if target == "subscriber" {
			up = c.subUp
		}
		var once sync.Once
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			if s == webrtc.PeerConnectionStateConnected {
				once.Do(func() { close(up) })
			}
		})
	}
	c.sub.OnTrack(c.onTrack)
	c.sub.OnDataChannel(c.onDataChannel)

	if err := c.Send(Message{Type: "join", Room: room, Name: name, Token: c.opts.Token, Avoid: c.opts.Avoid, Ticket: c.opts.Ticket}); err != nil {
		return err
	}
	var joined Message
	if err := wsjsonRead(ctx, c.ws, &joined); err != nil {
		return err
	}
	if joined.Type == "redirect" {
		return &RedirectError{URL: joined.URL, Node: joined.Node, Ticket: joined.Ticket}
	}
	if joined.Type != "joined" || joined.You == nil {
		return fmt.Errorf("join: got %q %s: %s", joined.Type, joined.Code, joined.Message)
	}
	c.ID, c.Node = joined.You.ID, joined.Node
	c.wg.Add(1)
	go c.readLoop()
	if c.opts.Publish {
		return c.publish()
	}
	return nil
}

func (c *Client) publish() error {
	var err error
	c.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "synthetic")
	if err != nil {
		return err
	}
	if c.video, err = newLayers(c.opts); err != nil {
		return err
	}
	video, err := c.pub.AddTransceiverFromTrack(c.video[0].track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return err
	}
	for _, l := range c.video[1:] {
		if err := video.Sender().AddEncoding(l.track); err != nil {
			return err
		}
	}
	audio, err := c.pub.AddTransceiverFromTrack(c.audio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return err
	}
	c.audioSender = audio.Sender()
	c.wg.Add(2)
	go c.readPublisherRTCP(video.Sender(), c.video)
	go c.readPublisherRTCP(audio.Sender(), nil)
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := c.pub.SetLocalDescription(offer); err != nil {
		return err
	}
	mid := video.Mid()
	c.videoMid.Store(&mid)
	if err := c.Send(Message{Type: "offer", Target: "publisher", SDP: offer.SDP}); err != nil {
		return err
	}
	c.wg.Add(2)
	go c.sendVideo(video)
	go c.sendAudio()
	return nil
}

// Gone is closed when the signaling connection has ended: the server closed
// it or went away, or the client was closed.
func (c *Client) Gone() <-chan struct{} { return c.gone }

// PublisherConnected is closed once the publisher PeerConnection is
// connected (never, for a viewer).
func (c *Client) PublisherConnected() <-chan struct{} { return c.pubUp }

// SubscriberConnected is closed once the subscriber PeerConnection is
// connected.
func (c *Client) SubscriberConnected() <-chan struct{} { return c.subUp }

// Send writes a message.
func (c *Client) Send(m Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.SendRaw(b)
}

// SendRaw writes bytes as one text message, as a misbehaving client might.
func (c *Client) SendRaw(b []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, b)
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	defer close(c.gone)
	for {
		var m Message
		if err := wsjsonRead(c.ctx, c.ws, &m); err != nil {
			c.deliver(Message{Type: "closed", Code: fmt.Sprint(websocket.CloseStatus(err)), Message: err.Error()})
			return
		}
		switch {
		case m.Type == "answer" && m.Target == "publisher":
			if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err == nil {
				c.pubCands = c.flush(c.pub, c.pubCands)
			}
		case m.Type == "offer" && m.Target == "subscriber":
			c.answer(m.SDP)
		case m.Type == "publish-layers":
			if mid := c.videoMid.Load(); mid != nil && m.Mid == *mid {
				c.setActive(m.Active)
			}
			c.deliver(m)
		case m.Type == "candidate" && m.Candidate != nil:
			pc, q := c.pub, &c.pubCands
			if m.Target == "subscriber" {
				pc, q = c.sub, &c.subCands
			}
			if pc.RemoteDescription() == nil {
				*q = append(*q, *m.Candidate)
			} else {
				_ = pc.AddICECandidate(*m.Candidate)
			}
		default:
			c.deliver(m)
		}
	}
}

func (c *Client) answer(sdp string) {
	if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		c.deliver(Message{Type: "client-error", Message: err.Error()})
		return
	}
	c.subCands = c.flush(c.sub, c.subCands)
	ans, err := c.sub.CreateAnswer(nil)
	if err == nil {
		err = c.sub.SetLocalDescription(ans)
	}
	if err != nil {
		c.deliver(Message{Type: "client-error", Message: err.Error()})
		return
	}
	_ = c.Send(Message{Type: "answer", Target: "subscriber", SDP: ans.SDP})
}

func (c *Client) flush(pc *webrtc.PeerConnection, q []webrtc.ICECandidateInit) []webrtc.ICECandidateInit {
	for _, cand := range q {
		_ = pc.AddICECandidate(cand)
	}
	return nil
}

func (c *Client) deliver(m Message) {
	select {
	case c.Messages <- m:
	default:
	}
}

// Received returns what arrived so far, by track id.
func (c *Client) Received() map[string]*Received {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]*Received, len(c.received))
	for k, v := range c.received {
		out[k] = v
	}
	return out
}

// readPublisherRTCP reads a sender's feedback, for the interceptors (NACK
// responder, reports) and for keyframe requests. Simulcast feedback arrives
// per layer.
func (c *Client) readPublisherRTCP(s *webrtc.RTPSender, layers []*layer) {
	defer c.wg.Done()
	if len(layers) <= 1 {
		c.readRTCP(func(b []byte) (int, error) {
			n, _, err := s.Read(b)
			return n, err
		})
		return
	}
	var wg sync.WaitGroup
	for _, l := range layers {
		wg.Go(func() {
			c.readRTCP(func(b []byte) (int, error) {
				n, _, err := s.ReadSimulcast(b, l.rid)
				return n, err
			})
		})
	}
	wg.Wait()
}

func (c *Client) readRTCP(read func([]byte) (int, error)) {
	buf := make([]byte, 1500)
	for {
		n, err := read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				c.keyframe.Store(true)
			}
		}
	}
}

// Close leaves the room and releases everything.
func (c *Client) Close() {
	if c.ws != nil {
		_ = c.Send(Message{Type: "leave"})
		// The close handshake, before the reader is cancelled: cancelling
		// first could reset the socket before the server read the leave,
		// and the server would keep the participant for a resume.
		_ = c.ws.Close(websocket.StatusNormalClosure, "")
	}
	c.cancel()
	if c.pub != nil {
		_ = c.pub.Close()
	}
	if c.sub != nil {
		_ = c.sub.Close()
	}
	c.wg.Wait()
}

// Abort drops the connection without leaving or a close frame, as a
// machine that loses its network does.
func (c *Client) Abort() {
	c.cancel()
	_ = c.ws.CloseNow()
	_ = c.pub.Close()
	_ = c.sub.Close()
	c.wg.Wait()
}

// WaitFor returns the first message of type typ (skipping others) or an error at ctx's end.
func (c *Client) WaitFor(ctx context.Context, typ string) (Message, error) {
	for {
		select {
		case m := <-c.Messages:
			if m.Type == typ {
				return m, nil
			}
		case <-ctx.Done():
			return Message{}, fmt.Errorf("waiting for %q: %w", typ, ctx.Err())
		}
	}
}

var errNotJSON = errors.New("not a JSON text message")

func wsjsonRead(ctx context.Context, ws *websocket.Conn, v any) error {
	typ, b, err := ws.Read(ctx)
	if err != nil {
		return err
	}
	if typ != websocket.MessageText {
		return errNotJSON
	}
	return json.Unmarshal(b, v)
}
