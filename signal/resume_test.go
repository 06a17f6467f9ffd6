package signal_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-sfu/switchboard/signal"
)

// Session resume (docs/protocol.md, Reconnecting).

func withGrace(d time.Duration) func(*signal.Handler) {
	return func(h *signal.Handler) { h.ResumeGrace = d }
}

// joinResumable joins name to room "r" and returns the client, its joined
// message, and the highest seq it has seen once its session is quiet
// (checked with a ping).
func (s *server) joinResumable(t *testing.T, name string) (*client, msg, uint64) {
	t.Helper()
	c := s.dial(t)
	j := c.join("r", name)
	if j.Resume == nil || len(j.Resume.Secret) < 32 {
		t.Fatalf("joined carries no usable resume secret: %s", j.raw)
	}
	return c, j, c.drain()
}

// drain reads up to a pong and returns the highest seq among what it read.
func (c *client) drain() uint64 {
	c.t.Helper()
	c.send(`{"type":"ping"}`)
	var last uint64
	ctx, cancel := context.WithTimeout(context.Background(), msgTimeout)
	defer cancel()
	for {
		m, err := c.read(ctx)
		if err != nil {
			c.t.Fatalf("draining: %v", err)
		}
		if m.Type == signal.TypePong {
			return last
		}
		last = max(last, m.Seq)
	}
}

// breakConn drops the socket without a close frame, as a lost network does.
func (c *client) breakConn() { _ = c.conn.CloseNow() }

func (c *client) expectUpdated(id string, reconnecting bool) {
	c.t.Helper()
	m := c.expect(signal.TypeParticipantUpdated)
	if m.Participant == nil || m.Participant.ID != id || m.Participant.Reconnecting != reconnecting {
		c.t.Fatalf("participant-updated %s, want %s reconnecting=%v", m.raw, id, reconnecting)
	}
}

func (c *client) resume(secret string, seq uint64) {
	c.t.Helper()
	c.sendJSON(map[string]any{"type": "resume", "secret": secret, "seq": seq})
}

// A client whose socket broke resumes on a new one: it gets, in order and
// once, the numbered messages it missed, then resumed; the others saw it
// reconnecting and back, never leaving.
func TestResumeReplaysWhatWasMissed(t *testing.T) {
	s := newServerWith(t, withGrace(10*time.Second))
	alice, _, _ := s.joinResumable(t, "Alice")
	bob, jb, bobSeq := s.joinResumable(t, "Bob")
	alice.expect(signal.TypeParticipantJoined)

	bob.breakConn()
	alice.expectUpdated(jb.You.ID, true)
	if got := gather(t, s.h); got["switchboard_reconnecting_participants"] != 1 {
		t.Errorf("metrics while Bob is away: %v", got)
	}
	carol := s.dial(t)
	jc := carol.join("r", "Carol")
	if ps := participants(t, jc); len(ps) != 2 {
		t.Fatalf("Carol sees %s, want Alice and Bob (away, not gone)", jc.Participants)
	} else {
		for _, p := range ps {
			if p.Reconnecting != (p.ID == jb.You.ID) {
				t.Errorf("Carol sees %+v; only Bob is reconnecting", p)
			}
		}
	}
	alice.expect(signal.TypeParticipantJoined)

	bob2 := s.dial(t)
	resumedAt := time.Now()
	bob2.resume(jb.Resume.Secret, bobSeq)
	want := bobSeq + 1
	sawCarol := false
	ctx, cancel := context.WithTimeout(context.Background(), msgTimeout)
	defer cancel()
	for {
		m, err := bob2.read(ctx)
		if err != nil {
			t.Fatalf("waiting for resumed: %v", err)
		}
		if m.Type == signal.TypeResumed {
			if m.Replayed != int(want-bobSeq-1) {
				t.Errorf("resumed says %d replayed, %d arrived", m.Replayed, want-bobSeq-1)
			}
			t.Logf("resume to resumed: %v, %d messages replayed; resumed is %d bytes", time.Since(resumedAt), m.Replayed, len(m.raw))
			break
		}
		if m.Seq != want {
			t.Fatalf("replayed %s with seq %d, want %d (in order, none twice)", m.raw, m.Seq, want)
		}
		want++
		if m.Type == signal.TypeParticipantJoined && m.Participant.ID == jc.You.ID {
			sawCarol = true
		}
	}
	if !sawCarol {
		t.Error("the resumed client was not told that Carol joined while it was away")
	}
	alice.expectUpdated(jb.You.ID, false)
	carol.expectUpdated(jb.You.ID, false)
	// Numbering goes on from where it was: the next message is want.
	dave := s.dial(t)
	dave.join("r", "Dave")
	if m := bob2.expect(signal.TypeParticipantJoined); m.Seq < want {
		t.Errorf("after the resume, seq %d; want it to continue from %d", m.Seq, want)
	}
	alice.expect(signal.TypeParticipantJoined) // Dave; nothing about Bob leaving came before

	if got := gather(t, s.h); got["switchboard_resumes_total"] != 1 || got["switchboard_reconnecting_participants"] != 0 {
		t.Errorf("metrics after one resume: %v", got)
	}
}

// gather returns the value of each metric c collects (unlabelled ones).
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				out[f.GetName()] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[f.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// A subscriber offer that the client saw but whose answer was lost is sent
// again on resume, so the negotiation completes instead of timing out.
func TestResumeOffersAgain(t *testing.T) {
	s := newServerWith(t, withGrace(10*time.Second))
	bob := s.dial(t)
	jb := bob.join("r", "Bob")
	offer := bob.expect(signal.TypeOffer)
	last := max(offer.Seq, bob.drain())
	bob.breakConn()

	bob2 := s.dial(t)
	bob2.resume(jb.Resume.Secret, last)
	again := bob2.expect(signal.TypeOffer)
	// The same offer: its ICE credentials and media sections (the server
	// may add the candidates it gathered since).
	if ufrag(again.SDP) != ufrag(offer.SDP) || strings.Count(again.SDP, "m=") != strings.Count(offer.SDP, "m=") || again.Seq <= last {
		t.Errorf("offered again with seq %d (last seen %d), ufrag %q, first offer's %q", again.Seq, last, ufrag(again.SDP), ufrag(offer.SDP))
	}
	bob2.expect(signal.TypeResumed)
}

// Past the grace the participant leaves, and its secret no longer resumes.
func TestResumeGraceExpires(t *testing.T) {
	const grace = 300 * time.Millisecond
	s := newServerWith(t, withGrace(grace))
	alice, _, _ := s.joinResumable(t, "Alice")
	bob, jb, seq := s.joinResumable(t, "Bob")
	alice.expect(signal.TypeParticipantJoined)

	bob.breakConn()
	alice.expectUpdated(jb.You.ID, true)
	alice.expectLeft(jb.You.ID)

	bob2 := s.dial(t)
	bob2.resume(jb.Resume.Secret, seq)
	bob2.expectError(signal.CodeResumeFailed)
	bob2.ping() // a refused resume does not end the connection: it can join
	bob2.join("r", "Bob")
}

func TestResumeRefused(t *testing.T) {
	s := newServerWith(t, withGrace(10*time.Second))
	bob, jb, seq := s.joinResumable(t, "Bob")
	bob.breakConn()

	for name, m := range map[string]map[string]any{
		"unknown secret": {"type": "resume", "secret": "not-a-secret-the-server-gave", "seq": seq},
		"a future seq":   {"type": "resume", "secret": jb.Resume.Secret, "seq": seq + 1000},
	} {
		c := s.dial(t)
		c.sendJSON(m)
		c.expectError(signal.CodeResumeFailed)
		t.Logf("%s: refused", name)
	}
	c := s.dial(t)
	c.send(`{"type":"resume"}`)
	c.expectError(signal.CodeBadMessage)
}

// A client that closes its socket itself (a closed tab sends 1001) has
// left: the others are told at once, not after the grace.
func TestCleanCloseLeavesAtOnce(t *testing.T) {
	s := newServerWith(t, withGrace(time.Minute))
	alice, bob, bobID := s.aliceAndBob(t)
	_ = bob.conn.Close(websocket.StatusGoingAway, "tab closed")
	alice.expectLeft(bobID)
}

// A resume while the old socket is still open (the client noticed the
// break before the server did) takes the session over: the old socket is
// closed with 4001.
func TestResumeTakesOverOpenSocket(t *testing.T) {
	s := newServerWith(t, withGrace(10*time.Second))
	alice, _, _ := s.joinResumable(t, "Alice")
	bob, jb, seq := s.joinResumable(t, "Bob")
	alice.expect(signal.TypeParticipantJoined)

	bob2 := s.dial(t)
	bob2.resume(jb.Resume.Secret, seq)
	bob2.expect(signal.TypeResumed)
	bob.expectClose(signal.StatusReplaced)
	bob2.ping()
	// Bob never left or went away in Alice's eyes.
	alice.ping()
}

// A join with the resume secret of a session still in its grace replaces
// it at once: the others see the old one leave and the new one join.
func TestJoinReplacesBySecret(t *testing.T) {
	s := newServerWith(t, withGrace(time.Minute))
	alice, _, _ := s.joinResumable(t, "Alice")
	bob, jb, _ := s.joinResumable(t, "Bob")
	alice.expect(signal.TypeParticipantJoined)
	bob.breakConn()
	alice.expectUpdated(jb.You.ID, true)

	bob2 := s.dial(t)
	bob2.sendJSON(map[string]string{"type": "join", "room": "r", "name": "Bob", "replace": jb.Resume.Secret})
	jb2 := bob2.expect(signal.TypeJoined)
	if ps := participants(t, jb2); len(ps) != 1 || ps[0].Name != "Alice" {
		t.Errorf("the new Bob sees %s, want only Alice", jb2.Participants)
	}
	alice.expectLeft(jb.You.ID)
	alice.expect(signal.TypeParticipantJoined)
}

// The same identity joining twice (a reloaded page): the first session is
// closed with 4001 and the room shows one participant.
func TestJoinReplacesSameIdentity(t *testing.T) {
	auth, configure := withAuth(t)
	s := newServerWith(t, func(h *signal.Handler) { configure(h); h.ResumeGrace = time.Minute })
	grant := func(id string) signal.Grant {
		return signal.Grant{Identity: id, Name: id, Room: "r", Publish: true, Subscribe: true}
	}
	alice := s.dial(t)
	alice.joinWith("r", "x", mint(t, auth, grant("alice"), time.Hour))
	alice.expect(signal.TypeJoined)
	bob := s.dial(t)
	bob.joinWith("r", "x", mint(t, auth, grant("bob"), time.Hour))
	jb := bob.expect(signal.TypeJoined)
	alice.expect(signal.TypeParticipantJoined)

	again := s.dial(t)
	again.joinWith("r", "x", mint(t, auth, grant("bob"), time.Hour))
	ja := again.expect(signal.TypeJoined)
	bob.expectError(signal.CodeReplaced)
	bob.expectClose(signal.StatusReplaced)
	alice.expectLeft(jb.You.ID)
	if m := alice.expect(signal.TypeParticipantJoined); m.Participant.ID != ja.You.ID {
		t.Errorf("Alice was told %s joined, want the new session %s", m.raw, ja.You.ID)
	}
	carol := s.dial(t)
	carol.joinWith("r", "x", mint(t, auth, grant("carol"), time.Hour))
	jc := carol.expect(signal.TypeJoined)
	if ps := participants(t, jc); len(ps) != 2 {
		t.Errorf("Carol sees %s, want Alice and one Bob", jc.Participants)
	}
}

var ufragLine = regexp.MustCompile(`a=ice-ufrag:(\S+)`)

func ufrag(sdp string) string {
	if m := ufragLine.FindStringSubmatch(sdp); m != nil {
		return m[1]
	}
	return ""
}
