package sfu

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func fileMsg(m map[string]any) []byte {
	b, _ := json.Marshal(m)
	return b
}

func offerMsg(id string, size int, to ...string) []byte {
	m := map[string]any{"type": "file-offer", "file": id, "name": "a <b>.bin", "size": size, "mime": "application/octet-stream"}
	if to != nil {
		m["to"] = to
	}
	return fileMsg(m)
}

func chunkMsg(id string, seq int, data []byte) []byte {
	return fileMsg(map[string]any{"type": "file-chunk", "file": id, "seq": seq, "data": base64.StdEncoding.EncodeToString(data)})
}

// waitFor polls until sink has a message of type typ matching ok.
func waitMsg(t *testing.T, s *fakeSink, typ string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	var got map[string]any
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, m := range ofType(s.messages(t), typ) {
			if ok == nil || ok(m) {
				got = m
				return got
			}
		}
	}
	var types []any
	for _, m := range s.messages(t) {
		types = append(types, m["type"], m["reason"])
	}
	t.Fatalf("no %s; got %v", typ, types)
	return nil
}

// received reassembles the chunks of file id that s got, checking their order.
func received(t *testing.T, s *fakeSink, id string) []byte {
	t.Helper()
	var out []byte
	next := 0.0
	for _, m := range ofType(s.messages(t), "file-chunk") {
		if m["file"] != id {
			continue
		}
		if m["seq"] != next {
			t.Fatalf("chunk %v after %v", m["seq"], next-1)
		}
		next++
		b, err := base64.StdEncoding.DecodeString(m["data"].(string))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

func TestFileRelay(t *testing.T) {
	r, ports, sinks := testRelay(t, DataLimits{MessagesPerSecond: 5}, 3)
	data := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 80000 bytes: 5 chunks
	r.receive(ports[0], offerMsg("f1", len(data)), true, false)
	acc := waitMsg(t, sinks[0], "file-accepted", nil)
	if acc["file"] != "f1" || len(acc["to"].([]any)) != 2 {
		t.Fatalf("accepted %v", acc)
	}
	off := waitMsg(t, sinks[1], "file-offer", nil)
	id := off["file"].(string)
	if off["name"] != "a <b>.bin" || off["size"] != float64(len(data)) || off["from"].(map[string]any)["id"] != "p0" {
		t.Fatalf("offer %v", off)
	}
	// More chunks than the message rate limit allows: not counted.
	seq := 0
	for i := 0; i < len(data); i += fileChunkSize {
		r.receive(ports[0], chunkMsg("f1", seq, data[i:min(i+fileChunkSize, len(data))]), true, false)
		seq++
	}
	r.receive(ports[0], fileMsg(map[string]any{"type": "file-end", "file": "f1"}), true, false)
	for _, s := range sinks[1:] {
		waitMsg(t, s, "file-end", nil)
		if got := received(t, s, id); !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes, want %d", len(got), len(data))
		}
	}
	if e := ofType(sinks[0].messages(t), "error"); len(e) != 0 {
		t.Fatalf("errors %v", e)
	}
	// The sender learns the slowest receiver's progress, and when all have it.
	r.receive(ports[1], fileMsg(map[string]any{"type": "file-ack", "file": id, "seq": seq - 1}), true, false)
	if m := ofType(sinks[0].messages(t), "file-ack"); len(m) != 0 {
		t.Fatalf("ack before every receiver acknowledged: %v", m)
	}
	r.receive(ports[2], fileMsg(map[string]any{"type": "file-ack", "file": id, "seq": seq - 1}), true, false)
	waitMsg(t, sinks[0], "file-ack", func(m map[string]any) bool { return m["seq"] == float64(seq-1) })
	waitMsg(t, sinks[0], "file-end", nil)
	r.files.mu.Lock()
	open := len(r.files.byID) + len(r.files.bySender)
	r.files.mu.Unlock()
	if open != 0 {
		t.Fatalf("%d transfers kept after the end", open)
	}
}

func TestFileSizeLimit(t *testing.T) {
	r, ports, sinks := testRelay(t, DataLimits{FileSize: 20000}, 2)
	r.receive(ports[0], offerMsg("big", 20001), true, false)
	e := waitMsg(t, sinks[0], "error", nil)
	if e["code"] != codeTooLarge || e["ref"] != "big" {
		t.Fatalf("error %v", e)
	}
	// Offered small, sent big: cancelled once past the offer.
	r.receive(ports[0], offerMsg("liar", 20000), true, false)
	off := waitMsg(t, sinks[1], "file-offer", nil)
	r.receive(ports[0], chunkMsg("liar", 0, make([]byte, fileChunkSize)), true, false)
	r.receive(ports[0], chunkMsg("liar", 1, make([]byte, fileChunkSize)), true, false)
	waitMsg(t, sinks[1], "file-cancel", func(m map[string]any) bool { return m["file"] == off["file"] && m["reason"] == "too-large" })
	waitMsg(t, sinks[0], "file-cancel", func(m map[string]any) bool { return m["file"] == "liar" && m["reason"] == "too-large" })
	if n := len(ofType(sinks[1].messages(t), "file-chunk")); n != 1 {
		t.Fatalf("%d chunks relayed; want 1", n)
	}
	// A chunk bigger than 16 KiB is refused.
	r.receive(ports[0], offerMsg("odd", 20000), true, false)
	r.receive(ports[0], chunkMsg("odd", 0, make([]byte, fileChunkSize+1)), true, false)
	waitMsg(t, sinks[0], "file-cancel", func(m map[string]any) bool { return m["file"] == "odd" })
}

// A receiver that does not read overflows and is dropped from the transfer;
// one that cancels and one that leaves too: the others get all of it, and
// the sender is not kept waiting for them.
func TestFileSlowCancelledAndGoneReceivers(t *testing.T) {
	r, ports, sinks := testRelay(t, DataLimits{QueueSize: 400 << 10}, 5)
	sinks[1].buffered.Store(dataHighWater) // never drains
	ids := []string{"p2", "p3", "p4", "p1"}
	data := make([]byte, 40*fileChunkSize)
	for i := range data {
		data[i] = byte(i * 7)
	}
	r.receive(ports[0], offerMsg("f", len(data), ids...), true, false)
	id := waitMsg(t, sinks[2], "file-offer", nil)["file"].(string)
	for seq := 0; seq*fileChunkSize < len(data); seq++ {
		r.receive(ports[0], chunkMsg("f", seq, data[seq*fileChunkSize:(seq+1)*fileChunkSize]), true, false)
		if seq == 2 {
			r.receive(ports[3], fileMsg(map[string]any{"type": "file-cancel", "file": id}), true, false)
			r.leave(ports[4]) // p4 leaves mid-transfer
		}
		// The live receiver keeps up; the sender's window follows it.
		for chunks(sinks[2]) < seq+1 {
			time.Sleep(time.Millisecond)
		}
		r.receive(ports[2], fileMsg(map[string]any{"type": "file-ack", "file": id, "seq": seq}), true, false)
	}
	r.receive(ports[0], fileMsg(map[string]any{"type": "file-end", "file": "f"}), true, false)
	waitMsg(t, sinks[2], "file-end", nil)
	if got := received(t, sinks[2], id); !bytes.Equal(got, data) {
		t.Fatalf("the live receiver got %d bytes of %d", len(got), len(data))
	}
	for _, want := range []struct{ who, reason string }{{"p1", "overflow"}, {"p3", "cancelled"}, {"p4", "left"}} {
		waitMsg(t, sinks[0], "file-cancel", func(m map[string]any) bool { return m["participant"] == want.who && m["reason"] == want.reason })
	}
	waitMsg(t, sinks[0], "file-end", func(m map[string]any) bool { return m["file"] == "f" })
	if n := len(ofType(sinks[3].messages(t), "file-chunk")); n > 3 {
		t.Errorf("the receiver that cancelled got %d chunks after", n)
	}
	if q := ports[1].queue.queued(); q > 400<<10+dataErrorSlack {
		t.Errorf("the slow receiver's queue holds %d bytes", q)
	}
}

func chunks(s *fakeSink) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.got {
		if strings.HasPrefix(m, `{"type":"file-chunk"`) {
			n++
		}
	}
	return n
}
