package sfu

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/internal/poll"
)

// fakeSink is a data channel: it records what is sent, and says its buffer
// holds buffered bytes (a slow receiver's never drains).
type fakeSink struct {
	mu       sync.Mutex
	got      []string
	buffered atomic.Uint64
}

func (s *fakeSink) SendText(m string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, m)
	return nil
}

func (s *fakeSink) BufferedAmount() uint64 { return s.buffered.Load() }

// messages decodes what s received.
func (s *fakeSink) messages(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]map[string]any, len(s.got))
	for i, m := range s.got {
		if err := json.Unmarshal([]byte(m), &out[i]); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	return out
}

func ofType(msgs []map[string]any, typ string) []map[string]any {
	var out []map[string]any
	for _, m := range msgs {
		if m["type"] == typ {
			out = append(out, m)
		}
	}
	return out
}

// testRelay is a room of n participants with fake channels, whose pumps
// run until the test ends.
func testRelay(t *testing.T, l DataLimits, n int) (*dataRelay, []*dataPort, []*fakeSink) {
	var ports []*dataPort
	var sinks []*fakeSink
	r := newDataRelay(l, func() []*dataPort { return ports })
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	for i := range n {
		s := &fakeSink{}
		p := newDataPort(dataFrom{ID: fmt.Sprintf("p%d", i), Name: fmt.Sprintf("P%d", i)}, r.limits, s, s)
		go p.queue.pump(done)
		ports, sinks = append(ports, p), append(sinks, s)
	}
	return r, ports, sinks
}

func chat(text string, to ...string) []byte {
	m := map[string]any{"type": "chat", "text": text}
	if to != nil {
		m["to"] = to
	}
	b, _ := json.Marshal(m)
	return b
}

func TestDataRelayChat(t *testing.T) {
	r, ports, sinks := testRelay(t, DataLimits{}, 3)
	r.receive(ports[0], chat("hello <b>all</b>"), true, false)
	r.receive(ports[1], chat("just you", "p2"), true, false)
	poll.Until(t, 2*time.Second, "p2 gets both", func() bool { return len(sinks[2].messages(t)) == 2 })
	got := sinks[2].messages(t)
	if got[0]["text"] != "hello <b>all</b>" || got[0]["from"].(map[string]any)["name"] != "P0" || got[0]["id"] == "" || got[0]["ts"] == nil {
		t.Errorf("first message %v", got[0])
	}
	if got[1]["text"] != "just you" || got[1]["from"].(map[string]any)["id"] != "p1" {
		t.Errorf("second message %v", got[1])
	}
	poll.Until(t, time.Second, "p0 gets its echo", func() bool { return len(sinks[0].messages(t)) == 1 })
	time.Sleep(50 * time.Millisecond)
	if m := sinks[0].messages(t); len(m) != 1 || m[0]["text"] != "hello <b>all</b>" {
		t.Errorf("p0 got %v; want only its own message back (not the private one)", m)
	}
	if h := r.history.all(); len(h) != 1 {
		t.Errorf("history has %d messages; want 1 (private messages are not kept)", len(h))
	}
}

// A client cannot speak for another: from is the sender's, whatever it sends.
func TestDataRelayStampsSender(t *testing.T) {
	r, ports, sinks := testRelay(t, DataLimits{}, 2)
	r.receive(ports[0], []byte(`{"type":"app","data":{"x":1},"from":{"id":"p1","name":"P1"},"id":"mine","ts":1}`), true, false)
	poll.Until(t, time.Second, "p1 gets it", func() bool { return len(sinks[1].messages(t)) == 1 })
	m := sinks[1].messages(t)[0]
	if m["from"].(map[string]any)["id"] != "p0" || m["id"] == "mine" || m["ts"] == float64(1) {
		t.Errorf("relayed %v; want it stamped by the server", m)
	}
	if d, _ := json.Marshal(m["data"]); string(d) != `{"x":1}` {
		t.Errorf("data %s", d)
	}
}

func TestDataRelayLimits(t *testing.T) {
	r, ports, sinks := testRelay(t, DataLimits{MessageSize: 1024, MessagesPerSecond: 5}, 2)
	r.receive(ports[0], chat(strings.Repeat("x", 2000)), true, false)
	r.receive(ports[0], []byte(`{"type":"chat","text":`), true, false)
	r.receive(ports[0], []byte{0x01, 0x02}, false, false)
	for i := range 5 {
		r.receive(ports[1], chat(fmt.Sprint(i)), true, false)
	}
	poll.Until(t, time.Second, "p0 gets 3 errors and p1's 5 messages", func() bool { return len(sinks[0].messages(t)) == 3+5 })
	var codes []string
	for _, m := range ofType(sinks[0].messages(t), "error") {
		codes = append(codes, m["code"].(string))
	}
	if strings.Join(codes, ",") != "too-large,bad-message,bad-message" {
		t.Errorf("errors %v; want too-large, bad-message, bad-message", codes)
	}
	// The three refused messages counted too: p0 has 2 left of its 5.
	r.receive(ports[0], chat("a"), true, false)
	r.receive(ports[0], chat("b"), true, false)
	r.receive(ports[0], chat("c"), true, false)
	poll.Until(t, time.Second, "a rate-limited error", func() bool { return len(ofType(sinks[0].messages(t), "error")) == 4 })
	if e := ofType(sinks[0].messages(t), "error")[3]; e["code"] != "rate-limited" {
		t.Errorf("got %v; want rate-limited", e)
	}
	if n := len(ofType(sinks[1].messages(t), "chat")); n != 5+2 {
		t.Errorf("p1 got %d chat messages; want its 5 and p0's 2", n)
	}
}

// One receiver that never drains costs the others nothing: past its queue's
// bound it misses messages, it and the sender are told, and its queue stays
// bounded.
func TestDataRelaySlowReceiver(t *testing.T) {
	l := DataLimits{MessageSize: 64 << 10, MessagesPerSecond: -1, QueueSize: 1 << 20}
	r, ports, sinks := testRelay(t, l, 4)
	slow := sinks[3]
	slow.buffered.Store(dataHighWater) // its channel never drains
	const n = 100
	payload := strings.Repeat("y", 30<<10)
	for i := range n {
		r.receive(ports[0], []byte(fmt.Sprintf(`{"type":"app","data":{"i":%d,"p":%q}}`, i, payload)), true, false)
	}
	for _, s := range sinks[1:3] {
		poll.Until(t, 5*time.Second, "a fast receiver gets everything", func() bool { return len(s.messages(t)) == n })
		for i, m := range s.messages(t) {
			if m["data"].(map[string]any)["i"] != float64(i) {
				t.Fatalf("message %d is %v: out of order", i, m["data"].(map[string]any)["i"])
			}
		}
	}
	if q := ports[3].queue.queued(); q > l.QueueSize+dataErrorSlack {
		t.Errorf("the slow receiver's queue holds %d bytes; bound %d", q, l.QueueSize+dataErrorSlack)
	}
	errs := ofType(sinks[0].messages(t), "error")
	if len(errs) == 0 || errs[0]["code"] != "overflow" || errs[0]["participant"] != "p3" {
		t.Fatalf("sender's errors %v; want overflow naming p3", errs)
	}
	// The receiver catches up: it has what fitted, then its own overflow errors.
	slow.buffered.Store(0)
	ports[3].queue.wake()
	poll.Until(t, 2*time.Second, "the slow queue drains", func() bool { return ports[3].queue.queued() == 0 })
	got := slow.messages(t)
	apps, slowErrs := ofType(got, "app"), ofType(got, "error")
	if len(apps) == 0 || len(apps) >= n || len(apps)+len(errs) != n {
		t.Errorf("slow receiver got %d of %d; the sender was told of %d missed", len(apps), n, len(errs))
	}
	if len(slowErrs) == 0 || slowErrs[0]["code"] != "overflow" {
		t.Errorf("slow receiver's errors %v; want overflow", slowErrs)
	}
	t.Logf("slow receiver: %d delivered, %d dropped; queue bound %d bytes", len(apps), len(errs), l.QueueSize)
}

func TestDataRelayLossy(t *testing.T) {
	r, ports, sinks := testRelay(t, DataLimits{}, 3)
	sinks[2].buffered.Store(lossyHighWater) // congested: dropped for it
	r.receive(ports[0], []byte(`{"type":"app","data":"cursor"}`), true, true)
	r.receive(ports[0], chat("no"), true, true)
	poll.Until(t, time.Second, "delivered, and an error", func() bool { return len(sinks[1].messages(t)) == 1 && len(sinks[0].messages(t)) == 1 })
	if e := sinks[0].messages(t)[0]; e["code"] != "bad-message" {
		t.Errorf("chat on the lossy channel: %v; want bad-message", e)
	}
	if len(sinks[2].messages(t)) != 0 {
		t.Errorf("a congested receiver got lossy data")
	}
}

func TestDataRelayUnknownRecipient(t *testing.T) {
	r, ports, sinks := testRelay(t, DataLimits{}, 2)
	r.receive(ports[0], chat("hi", "nobody"), true, false)
	poll.Until(t, time.Second, "an error", func() bool { return len(sinks[0].messages(t)) == 1 })
	if e := sinks[0].messages(t)[0]; e["code"] != "bad-message" {
		t.Errorf("%v; want bad-message", e)
	}
}

func TestChatLog(t *testing.T) {
	var l chatLog
	for i := range 250 {
		l.add([]byte(fmt.Sprint(i)))
	}
	all := l.all()
	if len(all) != chatLogMessages {
		t.Fatalf("kept %d; want %d", len(all), chatLogMessages)
	}
	for i, b := range all {
		if string(b) != fmt.Sprint(150+i) {
			t.Fatalf("message %d is %s; want %d (the newest, oldest first)", i, b, 150+i)
		}
	}
	big := make([]byte, chatLogBytes/3)
	for range 4 {
		l.add(big)
	}
	if n := len(l.all()); n != 3 {
		t.Errorf("kept %d messages of a third of the byte bound; want 3", n)
	}
}

// A newcomer's history goes before what was queued since it joined, and
// only as much as fits.
func TestDataQueuePrepend(t *testing.T) {
	s := &fakeSink{}
	q := newDataQueue(s, 12)
	q.push([]byte("live"))
	q.prepend([][]byte{[]byte("old1"), []byte("old2"), []byte("old3")})
	if got := pumped(t, q, s); got != "old2,old3,live" {
		t.Errorf("sent %v; want old2,old3,live", got)
	}
}

// pumped runs q's pump until the queue is empty and returns what reached
// s, comma-separated.
func pumped(t *testing.T, q *dataQueue, s *fakeSink) string {
	t.Helper()
	done := make(chan struct{})
	defer close(done)
	go q.pump(done)
	poll.Until(t, time.Second, "drained", func() bool { return q.queued() == 0 })
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.got, ",")
}

// A newcomer who chats before the server sees its channel open finds its
// echo both queued and in the history: it gets it once, in order.
func TestDataQueuePrependSkipsQueued(t *testing.T) {
	s := &fakeSink{}
	q := newDataQueue(s, 1<<10)
	var l chatLog
	l.add([]byte("before"))
	echo := []byte("mine")
	l.add(echo)
	q.push(echo)
	q.push([]byte("after"))
	q.prepend(l.all())
	if got := pumped(t, q, s); got != "before,mine,after" {
		t.Errorf("sent %v; want before,mine,after", got)
	}
}

func FuzzDataMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"chat","text":"hi"}`,
		`{"type":"chat","text":"hi","to":["a","b","a"]}`,
		`{"type":"app","data":{"x":[1,2]}}`,
		`{"type":"app","data":null,"to":[]}`,
		`{"type":"chat","text":"   "}`,
		`{"type":"chat","text":5}`,
		`{"type":"file"}`,
		`[1]`, `{`, "\xff", ``,
		`{"type":"app","data":"x","to":[""]}`,
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, b []byte, lossy bool) {
		m, to, err := decodeData(b, lossy)
		if err != nil {
			if err.Code != codeBadMessage || err.Message == "" {
				t.Fatalf("error %+v", err)
			}
			return
		}
		switch m.Type {
		case "chat":
			if lossy || m.Text == nil || strings.TrimSpace(*m.Text) == "" {
				t.Fatalf("accepted %q", b)
			}
		case "app":
			if !json.Valid(m.Data) {
				t.Fatalf("data %q", m.Data)
			}
		default:
			t.Fatalf("accepted type %q", m.Type)
		}
		if m.To != nil && (len(to) == 0 || len(to) > maxRecipients) {
			t.Fatalf("to %v", to)
		}
		seen := map[string]bool{}
		for _, id := range to {
			if id == "" || len(id) > maxIDLength || seen[id] {
				t.Fatalf("to %v", to)
			}
			seen[id] = true
		}
		// What the relay makes of it encodes.
		if _, err := json.Marshal(dataOut{Type: m.Type, Data: m.Data, To: to}); err != nil {
			t.Fatal(err)
		}
	})
}

// The server's own message (Rooms.SendData) reaches everyone, from
// "server", and is kept in the history.
func TestDataRelayAnnounce(t *testing.T) {
	r, _, sinks := testRelay(t, DataLimits{MessageSize: 200}, 2)
	if err := r.announce("the room closes in 5 minutes"); err != nil {
		t.Fatal(err)
	}
	for i, s := range sinks {
		poll.Until(t, 2*time.Second, fmt.Sprintf("p%d gets it", i), func() bool { return len(s.messages(t)) == 1 })
		m := s.messages(t)[0]
		from := m["from"].(map[string]any)
		if m["type"] != "chat" || m["text"] != "the room closes in 5 minutes" || from["id"] != "server" || from["name"] != "Server" || m["id"] == "" {
			t.Errorf("p%d got %v", i, m)
		}
	}
	if h := r.history.all(); len(h) != 1 {
		t.Errorf("history has %d messages; want 1", len(h))
	}
	if err := r.announce(""); err != ErrEmptyData {
		t.Errorf("empty text: %v; want ErrEmptyData", err)
	}
	if err := r.announce(strings.Repeat("x", 300)); !errors.Is(err, ErrDataTooLarge) {
		t.Errorf("300 bytes: %v; want ErrDataTooLarge", err)
	}
}
