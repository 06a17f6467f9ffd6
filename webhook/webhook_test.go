package webhook

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/internal/poll"
	"github.com/switchboard-sfu/switchboard/sfu"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var secret = []byte("a webhook secret of some length!")

type received struct {
	body []byte
	sig  string
	at   time.Time
}

// receiver records what it is sent and answers with status(n) for the nth
// request (from 1).
type receiver struct {
	mu  sync.Mutex
	got []received
	n   atomic.Int32
	srv *httptest.Server
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{body: b, sig: req.Header.Get(SignatureHeader), at: time.Now()})
		r.mu.Unlock()
		w.WriteHeader(status(int(r.n.Add(1))))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func event() sfu.Event {
	return sfu.Event{Type: sfu.TrackPublished, Room: "r", Time: time.UnixMilli(1700000000000),
		Participant: &sfu.ParticipantInfo{ID: "p1", Name: "Ann"},
		Track:       &sfu.TrackInfo{ID: "t1", Participant: "p1", Kind: webrtc.RTPCodecTypeAudio, Source: sfu.SourceMicrophone, Codec: "audio/opus"}}
}

func TestSignedPayload(t *testing.T) {
	rc := newReceiver(t, func(int) int { return 200 })
	s := New(Config{URLs: []string{rc.srv.URL}, Secret: secret}, zap.NewNop())
	defer s.Close()
	s.Observe(event())
	poll.Until(t, 5*time.Second, "the webhook arrives", func() bool { return len(rc.all()) == 1 })
	got := rc.all()[0]
	if !Verify(secret, got.body, got.sig) {
		t.Errorf("signature %q does not verify", got.sig)
	}
	if Verify([]byte("another secret of the same length"), got.body, got.sig) {
		t.Error("signature verifies with another secret")
	}
	var p map[string]any
	if err := json.Unmarshal(got.body, &p); err != nil {
		t.Fatal(err)
	}
	part, _ := p["participant"].(map[string]any)
	track, _ := p["track"].(map[string]any)
	if p["event"] != "track-published" || p["room"] != "r" || p["time"] != float64(1700000000000) || p["id"] == "" ||
		part["id"] != "p1" || part["name"] != "Ann" || track["id"] != "t1" || track["kind"] != "audio" || track["source"] != "microphone" {
		t.Errorf("payload %s", got.body)
	}
	if s.Sent() != 1 || s.Failed() != 0 {
		t.Errorf("sent %d, failed %d; want 1, 0", s.Sent(), s.Failed())
	}
}

// A 500 is retried after the backoff, doubled each time; then it succeeds.
func TestRetryWithBackoff(t *testing.T) {
	rc := newReceiver(t, func(n int) int {
		if n < 3 {
			return 500
		}
		return 204
	})
	s := New(Config{URLs: []string{rc.srv.URL}, Secret: secret, Backoff: 50 * time.Millisecond}, zap.NewNop())
	defer s.Close()
	s.Observe(event())
	poll.Until(t, 5*time.Second, "three tries", func() bool { return len(rc.all()) == 3 })
	got := rc.all()
	if got[0].sig != got[2].sig || string(got[0].body) != string(got[2].body) {
		t.Error("the retry is not the same request")
	}
	if d := got[1].at.Sub(got[0].at); d < 50*time.Millisecond {
		t.Errorf("second try %v after the first; want >= 50ms", d)
	}
	if d := got[2].at.Sub(got[1].at); d < 100*time.Millisecond {
		t.Errorf("third try %v after the second; want >= 100ms (doubled)", d)
	}
	poll.Until(t, time.Second, "counted sent", func() bool { return s.Sent() == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := len(rc.all()); n != 3 || s.Failed() != 0 {
		t.Errorf("%d requests, %d failed; want 3, 0", n, s.Failed())
	}
}

// A 4xx is not retried; five 5xx are given up on and counted.
func TestGivesUp(t *testing.T) {
	bad := newReceiver(t, func(int) int { return 400 })
	dead := newReceiver(t, func(int) int { return 503 })
	s := New(Config{URLs: []string{bad.srv.URL, dead.srv.URL}, Secret: secret, Backoff: time.Millisecond}, zap.NewNop())
	defer s.Close()
	s.Observe(event())
	poll.Until(t, 5*time.Second, "given up", func() bool { return s.Failed() == 1 })
	if n, m := len(bad.all()), len(dead.all()); n != 1 || m != DefaultTries {
		t.Errorf("%d requests to the 400, %d to the 503; want 1, %d", n, m, DefaultTries)
	}
}

// A receiver that never answers holds up neither Observe nor memory: the
// queue keeps the newest events and counts the dropped ones; Close returns.
func TestQueueBound(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	s := New(Config{URLs: []string{srv.URL}, Secret: secret, QueueSize: 8}, zap.NewNop())
	start := time.Now()
	for range 10_000 {
		s.Observe(event())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("10000 events took %v to queue", d)
	}
	if q := s.Queued(); q > 8 {
		t.Errorf("%d queued; want at most 8", q)
	}
	if d := s.Dropped(); d < 10_000-8-1 {
		t.Errorf("%d dropped; want at least %d", d, 10_000-8-1)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits for the dead receiver")
	}
}
