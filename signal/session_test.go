package signal_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	pionclient "github.com/switchboard-sfu/switchboard/internal/client"
	"github.com/switchboard-sfu/switchboard/signal"
)

func TestJoin(t *testing.T) {
	s := newServer(t)
	a := s.dial(t)
	ja := a.join("standup", "Alice")
	// Browsers iterate these; null would break a client that does not guard.
	if string(ja.Participants) != "[]" || string(ja.Tracks) != "[]" {
		t.Errorf("first joiner: participants %s tracks %s, want [] and []", ja.Participants, ja.Tracks)
	}

	b := s.dial(t)
	jb := b.join("standup", "Bob 🎥")
	if jb.You.ID == ja.You.ID {
		t.Errorf("both participants have id %q", ja.You.ID)
	}
	ps := participants(t, jb)
	if len(ps) != 1 || ps[0] != *ja.You {
		t.Errorf("second joiner sees participants %s, want [%+v]", jb.Participants, *ja.You)
	}
	if string(jb.Tracks) != "[]" {
		t.Errorf("second joiner: tracks %s, want []", jb.Tracks)
	}
	pj := a.expect(signal.TypeParticipantJoined)
	if pj.Participant == nil || *pj.Participant != *jb.You {
		t.Errorf("participant-joined %s, want %+v", pj.raw, *jb.You)
	}

	// Another room is separate: no one in it, and no event to a or b.
	c := s.dial(t)
	if jc := c.join("other", "Carol"); string(jc.Participants) != "[]" {
		t.Errorf("other room: participants %s, want []", jc.Participants)
	}

	// A closed tab: no leave, no close handshake.
	if err := b.conn.CloseNow(); err != nil {
		t.Fatal(err)
	}
	pl := a.expect(signal.TypeParticipantLeft)
	if pl.Participant == nil || *pl.Participant != *jb.You {
		t.Errorf("participant-left %s, want %+v", pl.raw, *jb.You)
	}
	// Carol got nothing about the other room: the next thing she sees is pong.
	c.ping()
	a.ping()
}

func TestLeave(t *testing.T) {
	s := newServer(t)
	a, b, bob := s.aliceAndBob(t)

	b.send(`{"type":"leave"}`)
	b.expectClose(websocket.StatusNormalClosure)
	a.expectLeft(bob)

	// The room lives on for Alice, and a newcomer sees only her.
	c := s.dial(t)
	jc := c.join("r", "Carol")
	if ps := participants(t, jc); len(ps) != 1 || ps[0].Name != "Alice" {
		t.Errorf("after Bob left, Carol sees %s", jc.Participants)
	}
}

// A leave before join is a bad message like any other; it must not end the session.
func TestLeaveBeforeJoin(t *testing.T) {
	s := newServer(t)
	c := s.dial(t)
	c.send(`{"type":"leave"}`)
	c.expectError(signal.CodeNotJoined)
	c.ping()
}

func TestPingBeforeJoin(t *testing.T) {
	s := newServer(t)
	c := s.dial(t)
	c.ping()
	c.join("r", "Alice")
	c.ping()
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name string
		// joined runs join first.
		joined bool
		run    func(t *testing.T, c *client)
		code   string
	}{
		{name: "malformed JSON", run: func(t *testing.T, c *client) { c.send(`{"type":`) }, code: signal.CodeBadMessage},
		{name: "JSON array", run: func(t *testing.T, c *client) { c.send(`[]`) }, code: signal.CodeBadMessage},
		{name: "bad room", run: func(t *testing.T, c *client) { c.send(`{"type":"join","room":"a b","name":"x"}`) }, code: signal.CodeBadMessage},
		{name: "unknown type", run: func(t *testing.T, c *client) { c.send(`{"type":"subscribe"}`) }, code: signal.CodeUnknownType},
		{name: "missing type", run: func(t *testing.T, c *client) { c.send(`{}`) }, code: signal.CodeUnknownType},
		{name: "offer before join", run: func(t *testing.T, c *client) {
			c.send(`{"type":"offer","target":"publisher","sdp":"v=0"}`)
		}, code: signal.CodeNotJoined},
		{name: "candidate before join", run: func(t *testing.T, c *client) {
			c.send(`{"type":"candidate","target":"publisher","candidate":{"candidate":""}}`)
		}, code: signal.CodeNotJoined},
		{name: "second join", joined: true, run: func(t *testing.T, c *client) {
			c.send(`{"type":"join","room":"other","name":"Alice"}`)
		}, code: signal.CodeAlreadyJoined},
		{name: "garbage publisher SDP", joined: true, run: func(t *testing.T, c *client) {
			c.send(`{"type":"offer","target":"publisher","sdp":"this is not SDP"}`)
		}, code: signal.CodeBadSDP},
		{name: "garbage answer to subscriber offer", joined: true, run: func(t *testing.T, c *client) {
			c.expect(signal.TypeOffer)
			c.send(`{"type":"answer","target":"subscriber","sdp":"this is not SDP"}`)
		}, code: signal.CodeBadSDP},
		{name: "answer without subscriber offer", joined: true, run: func(t *testing.T, c *client) {
			c.answerSubscriber()
			// Round trip, so the valid answer has been applied before the next.
			c.ping()
			c.send(`{"type":"answer","target":"subscriber","sdp":"v=0\r\n"}`)
		}, code: signal.CodeBadSDP},
		{name: "binary frame", run: func(t *testing.T, c *client) {
			c.sendRaw(websocket.MessageBinary, []byte(`{"type":"ping"}`))
		}, code: signal.CodeBadMessage},
		{name: "100 KiB text message", run: func(t *testing.T, c *client) {
			c.send(`{"type":"ping","pad":"` + strings.Repeat("x", 100<<10) + `"}`)
		}, code: signal.CodeTooLarge},
		{name: "100 KiB binary message", run: func(t *testing.T, c *client) {
			c.sendRaw(websocket.MessageBinary, make([]byte, 100<<10))
		}, code: signal.CodeTooLarge},
		{name: "bad publisher candidate after offer", joined: true, run: func(t *testing.T, c *client) {
			c.sendJSON(map[string]string{"type": "offer", "target": "publisher", "sdp": publisherOffer(t)})
			a := c.expect(signal.TypeAnswer)
			if a.Target != signal.TargetPublisher || !strings.HasPrefix(a.SDP, "v=0") {
				t.Fatalf("publisher answer: %s", a.raw)
			}
			c.send(`{"type":"candidate","target":"publisher","candidate":{"candidate":"candidate:garbage","sdpMid":"0","sdpMLineIndex":0}}`)
		}, code: signal.CodeBadCandidate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			c := s.dial(t)
			if tc.joined {
				c.join("r", "Alice")
			}
			tc.run(t, c)
			c.expectError(tc.code)
			c.ping()
			if !tc.joined {
				// The session is still fit to join after a bad message.
				c.join("r", "Alice")
				c.ping()
			}
		})
	}
}

// A valid publisher offer is answered, the end-of-candidates marker and a
// well-formed candidate are accepted silently.
func TestPublisherOffer(t *testing.T) {
	s := newServer(t)
	c := s.dial(t)
	c.join("r", "Alice")
	c.sendJSON(map[string]string{"type": "offer", "target": "publisher", "sdp": publisherOffer(t)})
	a := c.expect(signal.TypeAnswer)
	if a.Target != signal.TargetPublisher || !strings.Contains(a.SDP, "m=video") {
		t.Fatalf("publisher answer: %s", a.raw)
	}
	c.send(`{"type":"candidate","target":"publisher","candidate":{"candidate":""}}`)
	c.send(`{"type":"candidate","target":"publisher","candidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}}`)
	// Candidates for the subscriber before its offer are queued, not rejected.
	c.send(`{"type":"candidate","target":"subscriber","candidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}}`)
	c.ping()
}

// Nine bad messages leave the session usable; the tenth ends it with 1008,
// after the error for it has been delivered.
func TestTooManyBadMessages(t *testing.T) {
	s := newServer(t)
	a, b, bob := s.aliceAndBob(t)

	for i := 1; i < 10; i++ {
		b.send(`not json`)
		b.expectError(signal.CodeBadMessage)
	}
	b.ping()
	b.send(`{"type":"nope"}`)
	b.expectError(signal.CodeUnknownType)
	b.expectClose(websocket.StatusPolicyViolation)

	a.expectLeft(bob)
}

// Good messages in between do not reset the count: the limit is per connection.
func TestBadMessagesCountAcrossGoodOnes(t *testing.T) {
	s := newServer(t)
	c := s.dial(t)
	for i := 0; i < 9; i++ {
		c.send(`[]`)
		c.expectError(signal.CodeBadMessage)
		c.ping()
	}
	c.send(`[]`)
	c.expectError(signal.CodeBadMessage)
	c.expectClose(websocket.StatusPolicyViolation)
}

func TestFrameOver1MiB(t *testing.T) {
	s := newServer(t)
	a, b, bob := s.aliceAndBob(t)

	// The server stops reading mid-frame and closes; the write may or may not
	// complete before that, so its error is not the point.
	ctx, cancel := context.WithTimeout(context.Background(), msgTimeout)
	defer cancel()
	_ = b.conn.Write(ctx, websocket.MessageText, make([]byte, 1<<20+1))
	b.expectClose(websocket.StatusMessageTooBig)

	a.expectLeft(bob)
}

// At exactly the hard limit the frame is read and discarded: too-large, and
// the session goes on.
func TestFrameAt1MiB(t *testing.T) {
	s := newServer(t)
	c := s.dial(t)
	c.sendRaw(websocket.MessageText, make([]byte, 1<<20))
	c.expectError(signal.CodeTooLarge)
	c.ping()
}

func TestHandlerClose(t *testing.T) {
	s := newServer(t)
	a, b, _ := s.aliceAndBob(t)
	idle := s.dial(t) // connected, never joined
	idle.ping()

	done := make(chan struct{})
	go func() {
		defer close(done)
		s.h.Close()
	}()
	for _, c := range []*client{a, b, idle} {
		c.expectError(signal.CodeShuttingDown, signal.TypeParticipantLeft)
		c.expectClose(websocket.StatusGoingAway)
	}
	select {
	case <-done:
	case <-time.After(2 * msgTimeout):
		t.Fatal("Handler.Close did not return after every session closed")
	}

	// New connections are turned away with 1001, before any message.
	ctx, cancel := context.WithTimeout(context.Background(), msgTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, s.url, nil)
	if err != nil {
		return // refused outright is fine too
	}
	defer func() { _ = conn.CloseNow() }()
	_, b2, err := conn.Read(ctx)
	if err == nil {
		t.Fatalf("after Close, a new connection got %s", b2)
	}
	if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
		t.Fatalf("after Close, a new connection ended with %v, want close status 1001", err)
	}
}

// A client whose machine vanished does not answer pings. coder/websocket only
// answers a ping while a Read is in progress, so a client that stops reading
// is, to the server, a dead peer whose TCP connection still accepts bytes.
func TestDeadClientRemoved(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the ping timeout")
	}
	// The protocol promises participant-left within 10 s; wait longer so the
	// test can say how late it came rather than only that it did not.
	const promised = 10 * time.Second
	s := newServer(t)

	// Alice must stay healthy for longer than the ICE and negotiation
	// timeouts, so she is a full client: she answers subscriber offers,
	// trickles candidates and keeps reading.
	api, err := pionclient.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*promised)
	defer cancel()
	alice, err := pionclient.Join(ctx, api, s.url, "r", "Alice", pionclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(alice.Close)

	dead := s.dial(t)
	jd := dead.join("r", "Dead")
	stopped := time.Now() // dead never reads again

	if m, err := alice.WaitFor(ctx, signal.TypeParticipantJoined); err != nil || m.Participant == nil || m.Participant.ID != jd.You.ID {
		t.Fatalf("participant-joined: %+v, %v", m, err)
	}
	m, err := waitForAny(ctx, alice, signal.TypeParticipantLeft, signal.TypeError, "closed")
	elapsed := time.Since(stopped)
	if err != nil {
		t.Fatalf("no participant-left %.1fs after the client stopped answering: %v", elapsed.Seconds(), err)
	}
	if m.Type != signal.TypeParticipantLeft {
		t.Fatalf("Alice, the healthy client, got %+v while waiting for participant-left", m)
	}
	if m.Participant == nil || m.Participant.ID != jd.You.ID {
		t.Errorf("participant-left %+v, want %s", m.Participant, jd.You.ID)
	}
	if elapsed > promised {
		t.Errorf("participant-left came %.1fs after the client stopped answering pings; docs/protocol.md promises within %v", elapsed.Seconds(), promised)
	}
	// Alice is still in the room: a newcomer sees her and only her.
	c := s.dial(t)
	jc := c.join("r", "Carol")
	if ps := participants(t, jc); len(ps) != 1 || ps[0].ID != alice.ID {
		t.Errorf("after the dead client was removed, Carol sees %s", jc.Participants)
	}
}

// waitForAny returns the first of c's messages whose type is in types.
func waitForAny(ctx context.Context, c *pionclient.Client, types ...string) (pionclient.Message, error) {
	for {
		select {
		case m := <-c.Messages:
			if contains(types, m.Type) {
				return m, nil
			}
		case <-ctx.Done():
			return pionclient.Message{}, ctx.Err()
		}
	}
}

// Shutting down the rooms while sessions are open tells their clients too.
func TestRoomsClose(t *testing.T) {
	s := newServer(t)
	a := s.dial(t)
	a.join("r", "Alice")
	s.rooms.Close()
	a.expectError(signal.CodeShuttingDown)
	a.expectClose(websocket.StatusGoingAway)

	// The handler still accepts sockets, but a join is refused with an error
	// that, like every error, leaves the session open.
	b := s.dial(t)
	b.send(`{"type":"join","room":"r","name":"Bob"}`)
	b.expectError(signal.CodeShuttingDown)
	b.ping()
}

// A page on another site must not be able to open a session with the
// visitor's browser; only listed origins may.
func TestOrigin(t *testing.T) {
	s := newServerWith(t, func(h *signal.Handler) { h.OriginPatterns = []string{"app.example"} })
	dial := func(origin string) error {
		ctx, cancel := context.WithTimeout(context.Background(), msgTimeout)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, s.url, &websocket.DialOptions{HTTPHeader: map[string][]string{"Origin": {origin}}})
		if err == nil {
			_ = conn.CloseNow()
		}
		return err
	}
	if err := dial("http://evil.example"); err == nil {
		t.Error("a cross-origin page opened a session")
	}
	if err := dial("https://app.example"); err != nil {
		t.Errorf("listed origin refused: %v", err)
	}
	if err := dial(strings.TrimSuffix(s.srv.URL, "/")); err != nil {
		t.Errorf("same origin refused: %v", err)
	}
}

// Tracks reach others as track-published, newcomers in joined.tracks, and
// go away as track-unpublished before the publisher's participant-left.
func TestTracks(t *testing.T) {
	s := newServer(t)
	bob := s.dial(t)
	bob.join("r", "Bob")

	api, err := pionclient.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*msgTimeout)
	defer cancel()
	alice, err := pionclient.Join(ctx, api, s.url, "r", "Alice", pionclient.Options{Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	aliceOpen := true
	t.Cleanup(func() {
		if aliceOpen {
			alice.Close()
		}
	})

	bob.expect(signal.TypeParticipantJoined)
	kinds := map[string]string{} // track id -> kind
	for len(kinds) < 2 {
		m := bob.expectWithin(3*msgTimeout, signal.TypeTrackPublished)
		var tm struct {
			Track struct{ ID, Participant, Kind, Codec string } `json:"track"`
		}
		if err := json.Unmarshal(m.raw, &tm); err != nil {
			t.Fatal(err)
		}
		tr := tm.Track
		if tr.ID == "" || tr.Participant != alice.ID {
			t.Fatalf("track-published %s, want a track of %s", m.raw, alice.ID)
		}
		if want := map[string]string{"video": "video/VP8", "audio": "audio/opus"}[tr.Kind]; !strings.EqualFold(tr.Codec, want) {
			t.Errorf("track %s: kind %q codec %q", tr.ID, tr.Kind, tr.Codec)
		}
		kinds[tr.ID] = tr.Kind
	}

	carol := s.dial(t)
	jc := carol.join("r", "Carol")
	var tracks []struct{ ID, Participant, Kind, Codec string }
	if err := json.Unmarshal(jc.Tracks, &tracks); err != nil {
		t.Fatal(err)
	}
	if len(tracks) != 2 {
		t.Fatalf("Carol joined with tracks %s, want Alice's two", jc.Tracks)
	}
	for _, tr := range tracks {
		if kinds[tr.ID] != tr.Kind || tr.Participant != alice.ID {
			t.Errorf("joined.tracks has %+v, not one of %v", tr, kinds)
		}
	}
	if ps := participants(t, jc); len(ps) != 2 {
		t.Errorf("Carol sees participants %s, want Bob and Alice", jc.Participants)
	}
	bob.expect(signal.TypeParticipantJoined)

	alice.Close()
	aliceOpen = false
	for range 2 {
		m := bob.expect(signal.TypeTrackUnpublished)
		if !strings.Contains(string(m.raw), alice.ID) {
			t.Errorf("track-unpublished %s is not Alice's", m.raw)
		}
	}
	bob.expectLeft(alice.ID)
}
