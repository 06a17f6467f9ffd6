package firefoxtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Firefox starts, runs page scripts, and hands out its fake camera and
// microphone without a prompt: what the WebRTC tests rely on.
func TestFakeMedia(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("<!doctype html><title>t</title>"))
	}))
	defer srv.Close()
	b := Launch(t)
	tab := b.NewTab(t, srv.URL) // a secure context: getUserMedia needs one
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var sum int
	if err := tab.Eval(ctx, `1 + 1`, &sum); err != nil || sum != 2 {
		t.Fatalf("1 + 1 = %d, %v", sum, err)
	}
	if err := tab.Eval(ctx, `nosuchname`, nil); err == nil {
		t.Error("an exception in the page was not reported")
	}
	var kinds []string
	err := tab.Eval(ctx, `navigator.mediaDevices.getUserMedia({audio: true, video: true}).then(s => s.getTracks().map(t => t.kind).sort())`, &kinds)
	if err != nil || len(kinds) != 2 || kinds[0] != "audio" || kinds[1] != "video" {
		t.Fatalf("getUserMedia gave %v, %v; want an audio and a video track", kinds, err)
	}
	var up bool
	if err := tab.WaitFor(ctx, `typeof RTCPeerConnection === 'function'`, &up); err != nil || !up {
		t.Fatalf("RTCPeerConnection: %v", err)
	}
}
