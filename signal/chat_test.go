package signal_test

import (
	"testing"
	"time"

	pionclient "github.com/switchboard-sfu/switchboard/internal/client"
)

// nextData waits for the next data message of type typ on c.
func nextData(t *testing.T, c *pionclient.Client, typ string) pionclient.DataMessage {
	t.Helper()
	timeout := time.After(msgTimeout)
	for {
		select {
		case m := <-c.DataMessages():
			if m.Type == typ {
				return m
			}
		case <-timeout:
			t.Fatalf("no %s data message within %v", typ, msgTimeout)
		}
	}
}

func dataOpen(t *testing.T, c *pionclient.Client) {
	t.Helper()
	select {
	case <-c.DataOpen():
	case <-time.After(msgTimeout):
		t.Fatal("the data channel did not open")
	}
}

// Two participants chat over their data channels; one who joins later gets
// the messages to everyone, in order, and not the private one.
func TestChatOverDataChannels(t *testing.T) {
	s := newServer(t)
	alice := joinPion(t, s, "Alice")
	bob := joinPion(t, s, "Bob")
	dataOpen(t, alice)
	dataOpen(t, bob)

	if err := alice.SendData(map[string]any{"type": "chat", "text": "hi Bob"}); err != nil {
		t.Fatal(err)
	}
	m := nextData(t, bob, "chat")
	if m.Text != "hi Bob" || m.From.ID != alice.ID || m.From.Name != "Alice" || m.ID == "" || m.TS == 0 {
		t.Fatalf("Bob got %+v", m)
	}
	if echo := nextData(t, alice, "chat"); echo.ID != m.ID {
		t.Errorf("Alice's copy has id %q; Bob's %q", echo.ID, m.ID)
	}
	if err := bob.SendData(map[string]any{"type": "chat", "text": "hello <img src=x onerror=alert(1)>"}); err != nil {
		t.Fatal(err)
	}
	if m := nextData(t, alice, "chat"); m.From.Name != "Bob" || m.Text != "hello <img src=x onerror=alert(1)>" {
		t.Fatalf("Alice got %+v", m)
	}
	if err := bob.SendData(map[string]any{"type": "chat", "text": "just Alice", "to": []string{alice.ID}}); err != nil {
		t.Fatal(err)
	}
	if m := nextData(t, alice, "chat"); m.Text != "just Alice" || len(m.To) != 1 {
		t.Fatalf("Alice got %+v", m)
	}
	if err := bob.SendData(map[string]any{"type": "chat"}); err != nil {
		t.Fatal(err)
	}
	if e := nextData(t, bob, "error"); e.Code != "bad-message" {
		t.Errorf("a chat without text: %+v", e)
	}

	carol := joinPion(t, s, "Carol")
	var got []string
	for len(got) < 2 {
		got = append(got, nextData(t, carol, "chat").Text)
	}
	if got[0] != "hi Bob" || got[1] != "hello <img src=x onerror=alert(1)>" {
		t.Errorf("Carol's history %q; want the two messages to everyone, oldest first", got)
	}
	select {
	case m := <-carol.DataMessages():
		t.Errorf("Carol also got %+v", m)
	case <-time.After(200 * time.Millisecond):
	}
}
