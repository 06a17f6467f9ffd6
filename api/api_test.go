package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/api"
	"github.com/switchboard-sfu/switchboard/internal/client"
	"github.com/switchboard-sfu/switchboard/internal/poll"
	"github.com/switchboard-sfu/switchboard/rtc"
	"github.com/switchboard-sfu/switchboard/sfu"
	"github.com/switchboard-sfu/switchboard/signal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	secret = "0123456789abcdef0123456789abcdef"
	apiKey = "the-api-key"
)

type server struct {
	auth   *signal.Auth
	rooms  *sfu.Rooms
	url    string
	mu     sync.Mutex
	events []sfu.Event
}

func (s *server) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.events {
		out = append(out, string(e.Type)+" "+e.Room)
	}
	return out
}

// newServer serves signaling (open access) on /ws and the API on /api/.
func newServer(t *testing.T) *server {
	t.Helper()
	rapi, err := rtc.NewAPI(rtc.Config{Loopback: true}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	auth, err := signal.NewAuth([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	s := &server{auth: auth, rooms: sfu.NewRooms(rapi, zap.NewNop())}
	s.rooms.SetObserver(func(e sfu.Event) {
		s.mu.Lock()
		s.events = append(s.events, e)
		s.mu.Unlock()
	})
	h := signal.NewHandler(s.rooms, zap.NewNop())
	mux := http.NewServeMux()
	mux.Handle("GET /ws", h)
	mux.Handle(api.Prefix, api.New(s.rooms, auth, apiKey, zap.NewNop()))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		h.Close()
		s.rooms.Close()
		srv.Close()
	})
	s.url = srv.URL
	return s
}

func (s *server) token(t *testing.T, room string, admin bool) string {
	t.Helper()
	tok, err := s.auth.Mint(signal.Grant{Identity: "backend", Room: room, Admin: admin}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends method path with body and credentials and decodes the answer
// into out (if not nil); it returns the status.
func (s *server) do(t *testing.T, cred, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 400 {
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Errorf("%s %s: %d with body %q; want a JSON error", method, path, res.StatusCode, b)
		}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %q", method, path, err, b)
		}
	}
	return res.StatusCode
}

func join(t *testing.T, s *server, room, name string, publish bool) *client.Client {
	t.Helper()
	capi, err := client.NewAPI(client.LoopbackOnly())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Join(ctx, capi, "ws"+strings.TrimPrefix(s.url, "http")+"/ws", room, name, client.Options{Publish: publish})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestAuthentication(t *testing.T) {
	s := newServer(t)
	join(t, s, "a", "ann", false)
	other, _ := signal.NewAuth([]byte("another secret, also of 32 bytes"))
	wrong, _ := other.Mint(signal.Grant{Identity: "x", Room: signal.AllRooms, Admin: true}, time.Minute)
	for _, c := range []struct {
		name, cred, path string
		want             int
	}{
		{"none", "", "/api/rooms/a", 401},
		{"garbage", "nonsense", "/api/rooms/a", 401},
		{"wrong key", apiKey + "x", "/api/rooms", 401},
		{"another secret", wrong, "/api/rooms/a", 401},
		{"not admin", s.token(t, "a", false), "/api/rooms/a", 403},
		{"another room", s.token(t, "b", true), "/api/rooms/a", 403},
		{"admin of the room", s.token(t, "a", true), "/api/rooms/a", 200},
		{"admin of all rooms", s.token(t, signal.AllRooms, true), "/api/rooms/a", 200},
		{"api key", apiKey, "/api/rooms/a", 200},
		{"unknown endpoint", apiKey, "/api/nothing", 404},
		{"unknown endpoint, no credentials", "", "/api/nothing", 401},
	} {
		if got := s.do(t, c.cred, "GET", c.path, "", nil); got != c.want {
			t.Errorf("%s: %d; want %d", c.name, got, c.want)
		}
	}
	// A room's admin token lists only its room.
	join(t, s, "b", "bob", false)
	var list struct{ Rooms []api.Room }
	s.do(t, s.token(t, "b", true), "GET", "/api/rooms", "", &list)
	if len(list.Rooms) != 1 || list.Rooms[0].Name != "b" {
		t.Errorf("room b's admin lists %+v; want only b", list.Rooms)
	}
	s.do(t, apiKey, "GET", "/api/rooms", "", &list)
	if len(list.Rooms) != 2 {
		t.Errorf("the API key lists %+v; want a and b", list.Rooms)
	}
}

func TestEndpoints(t *testing.T) {
	s := newServer(t)
	ann := join(t, s, "r", "ann", true)
	bob := join(t, s, "r", "bob", false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Listing: ann's two tracks, once published.
	var room api.Room
	poll.Until(t, 10*time.Second, "ann's tracks listed", func() bool {
		s.do(t, apiKey, "GET", "/api/rooms/r", "", &room)
		for _, p := range room.Participants {
			if p.ID == ann.ID {
				return len(p.Tracks) == 2
			}
		}
		return false
	})
	if room.Name != "r" || len(room.Participants) != 2 {
		t.Errorf("room %+v", room)
	}
	var list struct{ Rooms []api.Room }
	if s.do(t, apiKey, "GET", "/api/rooms", "", &list); len(list.Rooms) != 1 || list.Rooms[0].Name != "r" {
		t.Errorf("rooms %+v", list.Rooms)
	}
	if got := s.do(t, apiKey, "GET", "/api/rooms/none", "", nil); got != 404 {
		t.Errorf("unknown room: %d; want 404", got)
	}

	// Mute: ann is told, and her audio is listed muted.
	for _, c := range []struct {
		path, body string
		want       int
	}{
		{"/api/rooms/r/participants/" + ann.ID + "/mute", `{"kind":"screen"}`, 400},
		{"/api/rooms/r/participants/" + ann.ID + "/mute", `not json`, 400},
		{"/api/rooms/r/participants/" + ann.ID + "/mute", ``, 400},
		{"/api/rooms/r/participants/nobody/mute", `{"kind":"audio"}`, 404},
		{"/api/rooms/none/participants/" + ann.ID + "/mute", `{"kind":"audio"}`, 404},
		{"/api/rooms/r/participants/" + ann.ID + "/mute", `{"kind":"audio"}`, 204},
	} {
		if got := s.do(t, apiKey, "POST", c.path, c.body, nil); got != c.want {
			t.Errorf("POST %s %s: %d; want %d", c.path, c.body, got, c.want)
		}
	}
	waitFor(ctx, t, ann, "muted")
	poll.Until(t, 5*time.Second, "ann's audio listed muted", func() bool {
		s.do(t, apiKey, "GET", "/api/rooms/r", "", &room)
		for _, p := range room.Participants {
			for _, tr := range p.Tracks {
				if p.ID == ann.ID && tr.Kind == "audio" {
					return tr.Muted
				}
			}
		}
		return false
	})

	// Data: a chat message from the server reaches bob.
	if got := s.do(t, apiKey, "POST", "/api/rooms/r/data", `{"text":""}`, nil); got != 400 {
		t.Errorf("empty text: %d; want 400", got)
	}
	if got := s.do(t, apiKey, "POST", "/api/rooms/r/data", `{"text":"hello from the backend"}`, nil); got != 204 {
		t.Errorf("data: %d; want 204", got)
	}
	select {
	case <-bob.DataOpen():
	case <-ctx.Done():
		t.Fatal("bob's data channel did not open")
	}
	for got := false; !got; {
		select {
		case m := <-bob.DataMessages():
			if m.Type == "chat" {
				if m.Text != "hello from the backend" || m.From.ID != "server" {
					t.Errorf("bob got %+v", m)
				}
				got = true
			}
		case <-ctx.Done():
			t.Fatal("bob did not get the server's message")
		}
	}

	// Remove bob: he is told why; then end the room: ann is told.
	if got := s.do(t, apiKey, "DELETE", "/api/rooms/r/participants/nobody", "", nil); got != 404 {
		t.Errorf("remove nobody: %d; want 404", got)
	}
	if got := s.do(t, apiKey, "DELETE", "/api/rooms/r/participants/"+bob.ID, `{"reason":"spam"}`, nil); got != 204 {
		t.Errorf("remove bob: %d; want 204", got)
	}
	if m := waitFor(ctx, t, bob, "error"); m.Code != signal.CodeRemoved || !strings.Contains(m.Message, "spam") {
		t.Errorf("bob was told %+v", m)
	}
	if got := s.do(t, apiKey, "DELETE", "/api/rooms/r", `{"reason":"over"}`, nil); got != 204 {
		t.Errorf("end: %d; want 204", got)
	}
	if m := waitFor(ctx, t, ann, "error"); m.Code != signal.CodeRoomEnded {
		t.Errorf("ann was told %+v", m)
	}
	poll.Until(t, 5*time.Second, "the room is gone", func() bool { return s.do(t, apiKey, "GET", "/api/rooms/r", "", nil) == 404 })

	// The observer saw it all, in order.
	want := []string{"room-started r", "participant-joined r", "track-published r", "participant-left r", "room-ended r"}
	poll.Until(t, 5*time.Second, "room-ended observed", func() bool {
		ev := s.seen()
		return len(ev) > 0 && ev[len(ev)-1] == "room-ended r"
	})
	ev := s.seen()
	i := 0
	for _, e := range ev {
		if i < len(want) && e == want[i] {
			i++
		}
	}
	if i != len(want) || strings.Count(strings.Join(ev, ","), "track-unpublished") != 2 ||
		strings.Count(strings.Join(ev, ","), "participant-joined") != 2 {
		t.Errorf("observed %v", ev)
	}
}

func waitFor(ctx context.Context, t *testing.T, c *client.Client, typ string) client.Message {
	t.Helper()
	m, err := c.WaitFor(ctx, typ)
	if err != nil {
		t.Fatalf("waiting for %s: %v", typ, err)
	}
	return m
}
