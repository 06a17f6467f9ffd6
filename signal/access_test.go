package signal_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	pionclient "github.com/switchboard-sfu/switchboard/internal/client"
	"github.com/switchboard-sfu/switchboard/internal/poll"
	"github.com/switchboard-sfu/switchboard/signal"
)

// Tests of who may join and what they may take: join tokens, rights,
// limits, draining (auth.go, limits.go).

var tokenSecret = []byte("0123456789abcdef0123456789abcdef")

func withAuth(t *testing.T) (*signal.Auth, func(*signal.Handler)) {
	auth, err := signal.NewAuth(tokenSecret)
	if err != nil {
		t.Fatal(err)
	}
	return auth, func(h *signal.Handler) { h.Auth = auth }
}

func mint(t *testing.T, auth *signal.Auth, g signal.Grant, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(g, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func signWith(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (c *client) joinWith(room, name, token string) {
	c.t.Helper()
	c.sendJSON(map[string]string{"type": "join", "room": room, "name": name, "token": token})
}

func TestTokens(t *testing.T) {
	auth, configure := withAuth(t)
	s := newServerWith(t, configure)
	alice := signal.Grant{Identity: "alice", Name: "Alice A.", Room: "standup", Publish: true, Subscribe: true}
	valid := mint(t, auth, alice, time.Hour)
	exp := time.Now().Add(time.Hour).Unix()
	claims := func(over map[string]any) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "alice", "room": "standup", "publish": true, "subscribe": true, "exp": exp}
		for k, v := range over {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	parts := strings.Split(valid, ".")
	otherRoom, _ := json.Marshal(map[string]any{"sub": "alice", "room": "board", "publish": true, "exp": exp})
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(otherRoom) + "." + parts[2]

	cases := []struct {
		name, room, token, code string
	}{
		{"missing", "standup", "", signal.CodeUnauthorized},
		{"expired", "standup", mint(t, auth, alice, -time.Minute), signal.CodeTokenExpired},
		{"for another room", "board", valid, signal.CodeForbidden},
		{"forged: another secret", "standup", signWith(t, jwt.SigningMethodHS256, []byte("another secret, 32 bytes or more!"), claims(nil)), signal.CodeUnauthorized},
		{"forged: room changed", "board", tampered, signal.CodeUnauthorized},
		{"forged: alg none", "standup", signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), signal.CodeUnauthorized},
		{"forged: HS512", "standup", signWith(t, jwt.SigningMethodHS512, tokenSecret, claims(nil)), signal.CodeUnauthorized},
		{"no expiry", "standup", signWith(t, jwt.SigningMethodHS256, tokenSecret, claims(map[string]any{"exp": nil})), signal.CodeUnauthorized},
		{"no identity", "standup", signWith(t, jwt.SigningMethodHS256, tokenSecret, claims(map[string]any{"sub": nil})), signal.CodeUnauthorized},
		{"not yet valid", "standup", signWith(t, jwt.SigningMethodHS256, tokenSecret, claims(map[string]any{"nbf": exp - 60})), signal.CodeUnauthorized},
		{"garbage", "standup", "not.a.jwt", signal.CodeUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := s.dial(t)
			c.joinWith(tc.room, "Mallory", tc.token)
			c.expectError(tc.code)
		})
	}
	// A refusal leaves the socket open; the valid token joins on it, with
	// the token's name rather than the one in join.
	c := s.dial(t)
	c.joinWith("standup", "Mallory", "garbage")
	c.expectError(signal.CodeUnauthorized)
	c.joinWith("standup", "Mallory", valid)
	if j := c.expect(signal.TypeJoined); j.You == nil || j.You.Name != "Alice A." {
		t.Errorf("joined as %s, want the token's name", j.raw)
	}
	// A token without a name shows its identity.
	b := s.dial(t)
	b.joinWith("standup", "Bobby", mint(t, auth, signal.Grant{Identity: "bob", Room: "standup"}, time.Hour))
	if j := b.expect(signal.TypeJoined); j.You == nil || j.You.Name != "bob" {
		t.Errorf("joined as %s, want the identity", j.raw)
	}
}

// Without the publish right the publisher offer is refused; without the
// subscribe right the server offers no one's media.
func TestRights(t *testing.T) {
	auth, configure := withAuth(t)
	s := newServerWith(t, configure)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	viewer := s.dial(t)
	viewer.joinWith("r", "v", mint(t, auth, signal.Grant{Identity: "viewer", Room: "r", Subscribe: true}, time.Hour))
	viewer.expect(signal.TypeJoined)
	viewer.answerSubscriber()
	viewer.sendJSON(map[string]string{"type": "offer", "target": "publisher", "sdp": publisherOffer(t)})
	viewer.expectError(signal.CodeForbidden)
	viewer.sendJSON(map[string]any{"type": "candidate", "target": "publisher",
		"candidate": map[string]any{"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}})
	viewer.expectError(signal.CodeForbidden)

	blind := s.dial(t)
	blind.joinWith("r", "b", mint(t, auth, signal.Grant{Identity: "blind", Room: "r", Publish: true}, time.Hour))
	blind.expect(signal.TypeJoined)
	blind.answerSubscriber()

	api, err := pionclient.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := pionclient.Join(ctx, api, s.url, "r", "pub", pionclient.Options{Publish: true,
		Token: mint(t, auth, signal.Grant{Identity: "pub", Room: "r", Publish: true, Subscribe: true}, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	// Both see the tracks announced; only the viewer is offered them (the
	// first offer with media is enough: the next waits for its answer).
	mediaOffer := func(c *client, wait time.Duration) bool {
		c.t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, wait)
		defer ccancel()
		for {
			m, err := c.read(cctx)
			if err != nil {
				return false
			}
			if m.Type == signal.TypeOffer && (strings.Contains(m.SDP, "m=audio") || strings.Contains(m.SDP, "m=video")) {
				return true
			}
		}
	}
	if !mediaOffer(viewer, 10*time.Second) {
		t.Error("the viewer with the subscribe right was not offered the media")
	}
	// Offered at the same time as the viewer's, if at all.
	if mediaOffer(blind, time.Second) {
		t.Error("a participant without the subscribe right was offered others' media")
	}
}

// A full room refuses the next participant and nobody else; a place frees
// up when someone leaves.
func TestRoomFull(t *testing.T) {
	s := newServerWith(t, func(h *signal.Handler) { h.Limits.ParticipantsPerRoom = 2 })
	a, b, c := s.dial(t), s.dial(t), s.dial(t)
	a.join("r", "A")
	b.join("r", "B")
	c.sendJSON(map[string]string{"type": "join", "room": "r", "name": "C"})
	c.expectError(signal.CodeRoomFull)
	c.join("other", "C") // other rooms are open
	a.alive()
	b.alive()
	b.send(`{"type":"leave"}`)
	b.expectClose(1000)
	d := s.dial(t)
	// B's socket may close before its place is given back: a join in
	// between is refused, and tried again.
	waitFor(t, "B's place to free up", func() bool {
		d.sendJSON(map[string]string{"type": "join", "room": "r", "name": "D"})
		ctx, cancel := context.WithTimeout(context.Background(), msgTimeout)
		defer cancel()
		for {
			m, err := d.read(ctx)
			if err != nil {
				t.Fatalf("waiting for D's join to be answered: %v", err)
			}
			switch {
			case m.Type == signal.TypeJoined:
				return true
			case m.Type == signal.TypeError && m.Code == signal.CodeRoomFull:
				return false
			case m.Type == signal.TypeError:
				t.Fatalf("D's join: %s", m.raw)
			}
		}
	})
}

func TestServerFull(t *testing.T) {
	s := newServerWith(t, func(h *signal.Handler) { h.Limits.Rooms = 2 })
	s.dial(t).join("one", "A")
	s.dial(t).join("two", "B")
	c := s.dial(t)
	c.sendJSON(map[string]string{"type": "join", "room": "three", "name": "C"})
	c.expectError(signal.CodeServerFull)
	c.join("two", "C") // an existing room still takes newcomers
}

// One address that connects too often is refused, with a reason and a
// close code that says to try later; other addresses are not.
func TestConnectionsPerMinute(t *testing.T) {
	s := newServerWith(t, func(h *signal.Handler) {
		h.Limits.ConnectionsPerMinute = 3
		h.ClientIP = func(r *http.Request) string { return r.Header.Get("X-Test-Client") }
	})
	dialFrom := func(ip string) *client {
		ctx, cancel := context.WithTimeout(context.Background(), msgTimeout)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, s.url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Test-Client": {ip}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.CloseNow() })
		return &client{t: t, conn: conn}
	}
	for range 3 {
		dialFrom("192.0.2.1").ping()
	}
	over := dialFrom("192.0.2.1")
	over.expectError(signal.CodeTooManyConnections)
	over.expectClose(websocket.StatusTryAgainLater)
	dialFrom("192.0.2.2").ping()
}

// A connection that sends too fast has the excess refused and, if it keeps
// on, is closed; the others in its room do not notice.
func TestMessagesPerSecond(t *testing.T) {
	s := newServerWith(t, func(h *signal.Handler) { h.Limits.MessagesPerSecond = 5 })
	calm := s.dial(t)
	calm.join("r", "calm")
	noisy := s.dial(t)
	noisy.join("r", "noisy")
	// The burst (twice the rate) passes, then messages are refused.
	for range 30 {
		noisy.send(`{"type":"ping"}`)
	}
	noisy.expectError(signal.CodeRateLimited, signal.TypePong)
	noisy.expectClose(websocket.StatusPolicyViolation)
	calm.expect(signal.TypeParticipantLeft, signal.TypeParticipantJoined)
	calm.alive()
}

// alive is ping, passing by news of the room.
func (c *client) alive() {
	c.t.Helper()
	c.send(`{"type":"ping"}`)
	c.expect(signal.TypePong, signal.TypeParticipantJoined, signal.TypeParticipantLeft)
}

func TestMessageSize(t *testing.T) {
	s := newServerWith(t, func(h *signal.Handler) { h.Limits.MessageSize = 2048 })
	c := s.dial(t)
	c.join("r", "A")
	c.send(`{"type":"ping","pad":"` + strings.Repeat("x", 2048) + `"}`)
	c.expectError(signal.CodeTooLarge)
	c.ping() // the session lives on
	// A larger limit than the default lets a large message through.
	big := newServerWith(t, func(h *signal.Handler) { h.Limits.MessageSize = 200 << 10 })
	d := big.dial(t)
	d.send(`{"type":"ping","pad":"` + strings.Repeat("x", 100<<10) + `"}`)
	d.expect(signal.TypePong)
}

// Draining tells the participants, refuses joins, and ends once they left.
func TestDrain(t *testing.T) {
	s := newServer(t)
	a := s.dial(t)
	a.join("r", "A")
	drained := make(chan struct{})
	go func() {
		s.h.Drain(context.Background(), 30*time.Second)
		close(drained)
	}()
	if m := a.expect(signal.TypeDraining); !strings.Contains(string(m.raw), `"grace":30`) {
		t.Errorf("draining message %s", m.raw)
	}
	b := s.dial(t)
	b.sendJSON(map[string]string{"type": "join", "room": "r", "name": "B"})
	b.expectError(signal.CodeShuttingDown)
	select {
	case <-drained:
		t.Fatal("drain ended with a participant still there")
	case <-time.After(200 * time.Millisecond):
	}
	a.send(`{"type":"leave"}`)
	select {
	case <-drained:
	case <-time.After(msgTimeout):
		t.Fatal("drain did not end when the last participant left")
	}
}

// joined carries each participant's own ICE servers.
func TestICEServersInJoined(t *testing.T) {
	s := newServerWith(t, func(h *signal.Handler) {
		h.ICEServers = func(id string) []signal.ICEServer {
			return []signal.ICEServer{{URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "exp:" + id, Credential: "pw"}}
		}
	})
	c := s.dial(t)
	c.sendJSON(map[string]string{"type": "join", "room": "r", "name": "A"})
	raw := c.expect(signal.TypeJoined).raw
	var j struct {
		You        struct{ ID string }
		ICEServers []signal.ICEServer `json:"iceServers"`
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		t.Fatal(err)
	}
	if len(j.ICEServers) != 1 || j.ICEServers[0].Username != "exp:"+j.You.ID || j.ICEServers[0].URLs[0] == "" {
		t.Errorf("joined %s", raw)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, msgTimeout, what, cond)
}

// Candidates that arrive before their connection's offer are held, up to a
// bound: past it the client is told, and the session goes on.
func TestPendingCandidatesBounded(t *testing.T) {
	s := newServer(t)
	c := s.dial(t)
	c.join("r", "Alice")
	cand := map[string]any{"type": "candidate", "target": "publisher",
		"candidate": map[string]any{"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "sdpMid": "0"}}
	for range 64 {
		c.sendJSON(cand)
	}
	c.ping() // all 64 held without complaint
	c.sendJSON(cand)
	c.expectError(signal.CodeBadCandidate)
	c.ping()
}
