package signal

import (
	"encoding/json"
	"fmt"
	"testing"
)

func seqs(t *testing.T, msgs [][]byte) []uint64 {
	t.Helper()
	var out []uint64
	for _, m := range msgs {
		var v struct {
			Seq  uint64 `json:"seq"`
			Type string `json:"type"`
		}
		if err := json.Unmarshal(m, &v); err != nil {
			t.Fatalf("stamped message %s: %v", m, err)
		}
		if v.Type != fmt.Sprint("m", v.Seq) {
			t.Fatalf("message %s carries the wrong body for its seq", m)
		}
		out = append(out, v.Seq)
	}
	return out
}

func fill(o *outbox, n int) {
	for i := 0; i < n; i++ {
		o.add([]byte(fmt.Sprintf(`{"type":"m%d"}`, o.last()+1)))
	}
}

func TestOutboxReplaysWhatWasMissedInOrderOnce(t *testing.T) {
	var o outbox
	if got, ok := o.since(0); !ok || len(got) != 0 {
		t.Fatalf("empty outbox since 0: %d messages, %v", len(got), ok)
	}
	fill(&o, 5)
	got, ok := o.since(2)
	if !ok {
		t.Fatal("since 2 refused")
	}
	if s := seqs(t, got); fmt.Sprint(s) != "[3 4 5]" {
		t.Errorf("since 2 gave %v, want [3 4 5]", s)
	}
	if got, ok := o.since(5); !ok || len(got) != 0 {
		t.Errorf("since the last: %d messages, %v; want none", len(got), ok)
	}
	// A client cannot have seen a message not yet sent: a forged or
	// confused sequence number is refused, not answered with nothing.
	if _, ok := o.since(6); ok {
		t.Error("since a future seq accepted")
	}
	fill(&o, 1)
	if s := seqs(t, mustSince(t, &o, 5)); fmt.Sprint(s) != "[6]" {
		t.Errorf("after one more, since 5 gave %v", s)
	}
}

func mustSince(t *testing.T, o *outbox, seq uint64) [][]byte {
	t.Helper()
	got, ok := o.since(seq)
	if !ok {
		t.Fatalf("since %d refused", seq)
	}
	return got
}

func TestOutboxBoundedByCount(t *testing.T) {
	var o outbox
	fill(&o, outboxMessages+10)
	if len(o.kept) != outboxMessages {
		t.Fatalf("kept %d messages, bound %d", len(o.kept), outboxMessages)
	}
	// The oldest ten are gone: a client that saw only the first five must rejoin.
	if _, ok := o.since(5); ok {
		t.Error("replay from seq 5 accepted after it was dropped")
	}
	got := mustSince(t, &o, 10)
	if s := seqs(t, got); s[0] != 11 || s[len(s)-1] != outboxMessages+10 || len(s) != outboxMessages {
		t.Errorf("since 10: %d messages from %d to %d", len(s), s[0], s[len(s)-1])
	}
}

func TestOutboxBoundedByBytes(t *testing.T) {
	var o outbox
	big := make([]byte, 100<<10)
	for i := range big {
		big[i] = 'x'
	}
	for i := 0; i < 10; i++ {
		o.add([]byte(fmt.Sprintf(`{"type":"m%d","pad":"%s"}`, o.last()+1, big)))
	}
	if o.bytes > outboxBytes {
		t.Errorf("kept %d bytes, bound %d", o.bytes, outboxBytes)
	}
	if _, ok := o.since(o.last() - 1); !ok {
		t.Error("the latest message is not kept")
	}
	if _, ok := o.since(0); ok {
		t.Error("replay from the start accepted after the bytes bound dropped some")
	}
}

func TestStamp(t *testing.T) {
	for in, want := range map[string]string{
		`{"type":"x"}`: `{"seq":7,"type":"x"}`,
		`{}`:           `{"seq":7}`,
	} {
		if got := string(stamp([]byte(in), 7)); got != want {
			t.Errorf("stamp(%s) = %s, want %s", in, got, want)
		}
	}
}

// The cost resume adds to every message a participant is sent: numbering
// and keeping it.
func BenchmarkOutboxAdd(b *testing.B) {
	var o outbox
	msg := []byte(`{"type":"participant-joined","participant":{"id":"3f9a1c0e5b7d2a61","name":"Alice"}}`)
	b.ReportAllocs()
	for b.Loop() {
		o.add(msg)
	}
}

// What a resume costs the server beyond the socket: finding the messages
// after the client's last, here 100 of them.
func BenchmarkOutboxSince(b *testing.B) {
	var o outbox
	fill(&o, 400)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := o.since(300); !ok {
			b.Fatal("refused")
		}
	}
}
