// The test harness of the signaling tests: a server on httptest, and a
// raw WebSocket client that reads and expects messages.
package signal_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	pionclient "github.com/switchboard-sfu/switchboard/internal/client"
	"github.com/switchboard-sfu/switchboard/rtc"
	"github.com/switchboard-sfu/switchboard/sfu"
	"github.com/switchboard-sfu/switchboard/signal"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// How long to wait for a message that should come promptly. Generous so a
// loaded -race run does not flake; a missing message still fails.
const msgTimeout = 5 * time.Second

type server struct {
	h     *signal.Handler
	rooms *sfu.Rooms
	srv   *httptest.Server
	url   string
}

func newServer(t *testing.T) *server {
	t.Helper()
	return newServerWith(t, nil)
}

// newServerWith lets a test configure the handler before it serves anything.
func newServerWith(t *testing.T, configure func(*signal.Handler)) *server {
	t.Helper()
	api, err := rtc.NewAPI(rtc.Config{Loopback: true}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	rooms := sfu.NewRooms(api, zap.NewNop())
	h := signal.NewHandler(rooms, zap.NewNop())
	if configure != nil {
		configure(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		// Sessions first, so that they end by closing their sockets rather
		// than by the rooms pulling participants out from under them.
		h.Close()
		rooms.Close()
		srv.Close()
	})
	return &server{h: h, rooms: rooms, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
}

// msg is any server message; which fields are set depends on Type.
type msg struct {
	Type         string                   `json:"type"`
	Code         string                   `json:"code"`
	Message      string                   `json:"message"`
	Target       string                   `json:"target"`
	SDP          string                   `json:"sdp"`
	Candidate    *webrtc.ICECandidateInit `json:"candidate"`
	You          *participant             `json:"you"`
	Participant  *participant             `json:"participant"`
	Participants json.RawMessage          `json:"participants"`
	Tracks       json.RawMessage          `json:"tracks"`
	Seq          uint64                   `json:"seq"`
	Resume       *struct {
		Secret string `json:"secret"`
		Grace  int    `json:"grace"`
	} `json:"resume"`
	Replayed int `json:"replayed"`
	Track    *struct {
		Kind        string `json:"kind"`
		Participant string `json:"participant"`
		Muted       bool   `json:"muted"`
	} `json:"track"`

	raw []byte
}

type participant struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Reconnecting bool   `json:"reconnecting"`
	Admin        bool   `json:"admin"`
}

type client struct {
	t    *testing.T
	conn *websocket.Conn
}

func (s *server) dial(t *testing.T) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), msgTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, s.url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	// Server messages are small; the default 32 KiB limit only matters for
	// SDP, which can get long with many tracks.
	conn.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &client{t: t, conn: conn}
}

func (c *client) sendRaw(typ websocket.MessageType, b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), msgTimeout)
	defer cancel()
	if err := c.conn.Write(ctx, typ, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) send(s string) {
	c.t.Helper()
	c.sendRaw(websocket.MessageText, []byte(s))
}

func (c *client) sendJSON(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(websocket.MessageText, b)
}

// read returns the next server message, or the read error (a close shows
// up here as an error carrying the close status).
func (c *client) read(ctx context.Context) (msg, error) {
	typ, b, err := c.conn.Read(ctx)
	if err != nil {
		return msg{}, err
	}
	if typ != websocket.MessageText {
		return msg{}, errors.New("server sent a binary frame")
	}
	var m msg
	if err := json.Unmarshal(b, &m); err != nil {
		return msg{}, err
	}
	m.raw = b
	return m, nil
}

// background are the messages a session may receive at any time as its
// PeerConnections negotiate (the server offers the subscriber connection
// right after join), plus the simulcast notices docs/protocol.md adds, so
// that these tests keep meaning the same once the server sends them. Tests
// waiting for something else pass them by.
var background = map[string]bool{
	signal.TypeCandidate: true, signal.TypeOffer: true,
	"track-updated": true, "stream-state": true, "publish-layers": true, "speakers": true,
}

// expectWithin reads until a message of type typ arrives. An error message,
// when typ is not error, fails the test: it means something else went wrong.
func (c *client) expectWithin(d time.Duration, typ string, skip ...string) msg {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		m, err := c.read(ctx)
		if err != nil {
			c.t.Fatalf("waiting for %q: %v (close status %d)", typ, err, websocket.CloseStatus(err))
		}
		if m.Type == typ {
			return m
		}
		if background[m.Type] || contains(skip, m.Type) {
			continue
		}
		c.t.Fatalf("waiting for %q: got unexpected %s", typ, m.raw)
	}
}

// aliceAndBob joins two clients to room "r" and returns them with Bob's
// id, once Alice has been told he joined.
func (s *server) aliceAndBob(t *testing.T) (alice, bob *client, bobID string) {
	t.Helper()
	alice = s.dial(t)
	alice.join("r", "Alice")
	bob = s.dial(t)
	jb := bob.join("r", "Bob")
	alice.expect(signal.TypeParticipantJoined)
	return alice, bob, jb.You.ID
}

// expectLeft reads participant-left and checks that it names id.
func (c *client) expectLeft(id string) {
	c.t.Helper()
	m := c.expect(signal.TypeParticipantLeft)
	if m.Participant == nil || m.Participant.ID != id {
		c.t.Errorf("participant-left %s, want %s", m.raw, id)
	}
}

func (c *client) expect(typ string, skip ...string) msg {
	c.t.Helper()
	return c.expectWithin(msgTimeout, typ, skip...)
}

func (c *client) expectError(code string, skip ...string) msg {
	c.t.Helper()
	m := c.expect(signal.TypeError, skip...)
	if m.Code != code {
		c.t.Fatalf("got error %q (%s), want %q", m.Code, m.Message, code)
	}
	if m.Message == "" {
		c.t.Errorf("error %q has an empty message", m.Code)
	}
	return m
}

// expectClose reads, passing by any messages, until the socket closes, and
// checks the close status.
func (c *client) expectClose(want websocket.StatusCode) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*msgTimeout)
	defer cancel()
	for {
		_, err := c.read(ctx)
		if err == nil {
			continue
		}
		if got := websocket.CloseStatus(err); got != want {
			c.t.Fatalf("socket ended with %v (status %d), want close status %d", err, got, want)
		}
		return
	}
}

// ping checks the session still answers, which is how the tests tell a
// session survived a bad message.
func (c *client) ping() {
	c.t.Helper()
	c.send(`{"type":"ping"}`)
	c.expect(signal.TypePong)
}

func (c *client) join(room, name string) msg {
	c.t.Helper()
	c.sendJSON(map[string]string{"type": "join", "room": room, "name": name})
	m := c.expect(signal.TypeJoined)
	if m.You == nil || m.You.ID == "" {
		c.t.Fatalf("joined without you.id: %s", m.raw)
	}
	if m.You.Name != name {
		c.t.Errorf("joined as %q, want %q", m.You.Name, name)
	}
	return m
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func participants(t *testing.T, m msg) []participant {
	t.Helper()
	var ps []participant
	if err := json.Unmarshal(m.Participants, &ps); err != nil {
		t.Fatalf("participants %s: %v", m.Participants, err)
	}
	return ps
}

// publisherOffer returns a valid publisher offer from a real Pion
// PeerConnection, closed when the test ends.
func publisherOffer(t *testing.T) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// answerSubscriber waits for the server's subscriber offer and answers it
// from a real Pion PeerConnection, closed when the test ends. Without an
// answer the server drops the client after its negotiation timeout.
func (c *client) answerSubscriber() {
	c.t.Helper()
	t := c.t
	o := c.expect(signal.TypeOffer)
	if o.Target != signal.TargetSubscriber {
		t.Fatalf("server offer for %q, want subscriber", o.Target)
	}
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: o.SDP}); err != nil {
		t.Fatalf("server's subscriber offer does not apply: %v", err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	c.sendJSON(map[string]string{"type": "answer", "target": "subscriber", "sdp": answer.SDP})
}

// received counts what c has received from participant of kind ("audio"
// or "video"): packets and keyframes.
func received(c *pionclient.Client, participant, kind string) (packets, keyframes int64) {
	for _, r := range c.Received() {
		if r.Participant == participant && r.Kind == kind {
			packets += r.Packets.Load()
			keyframes += r.Keyframes.Load()
		}
	}
	return packets, keyframes
}
