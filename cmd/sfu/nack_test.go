package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/internal/browsertest"
	"github.com/switchboard-sfu/switchboard/internal/netlab"
)

// outboundVideo sums what a publisher tab's video encodings sent and how
// many of the server's NACKs it answered.
const outboundVideo = `(async () => {
  const r = {packets: 0, nacks: 0, retransmitted: 0};
  (await window.switchboard.publisher.getStats()).forEach(s => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      r.packets += s.packetsSent || 0; r.nacks += s.nackCount || 0; r.retransmitted += s.retransmittedPacketsSent || 0;
    }
  });
  return r; })()`

type outbound struct {
	Packets       int `json:"packets"`
	Nacks         int `json:"nacks"`
	Retransmitted int `json:"retransmitted"`
}

// A publisher whose uplink loses 5% of its packets: the server's NACKs make
// the browser retransmit, so a viewer keeps decoding.
func TestBrowserUplinkLoss(t *testing.T) {
	link := netlab.New(t)
	port := startServerBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := link.LossFrom(0.05); err != nil {
		t.Fatal(err)
	}
	origin := fmt.Sprintf("http://%s:%s", link.HostIP, port)
	far := launchBehind(t, link, origin)
	near := browsertest.Launch(t)
	pub := far.NewTab(t, origin+"/?room=lossy&name=camera")
	v := &viewer{name: "viewer of a publisher with 5% uplink loss",
		tab: near.NewTab(t, fmt.Sprintf("http://127.0.0.1:%s/?room=lossy&name=viewer&publish=0", port))}
	defer v.log(t)

	var decoding bool
	if err := v.tab.WaitFor(ctx, `(async () => { const r = await `+inboundVideo+`; return !!r && r.frames > 0; })()`, &decoding); err != nil {
		t.Fatalf("viewer decoded nothing: %v\n%s", err, pub.Console())
	}
	var before, after outbound
	if err := pub.Eval(ctx, outboundVideo, &before); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for range 12 {
		<-tick.C
		if _, err := v.poll(ctx, start); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Eval(ctx, outboundVideo, &after); err != nil {
		t.Fatal(err)
	}
	sent, nacks, resent := after.Packets-before.Packets, after.Nacks-before.Nacks, after.Retransmitted-before.Retransmitted
	t.Logf("publisher over 12 s: %d packets sent, %d NACKs received, %d packets retransmitted", sent, nacks, resent)
	if nacks == 0 || resent == 0 {
		t.Errorf("publisher received %d NACKs and retransmitted %d packets through 5%% loss, want both above 0", nacks, resent)
	}

	// Judge the last 10 s. The fake camera runs at 20 fps.
	s := v.samples[len(v.samples)-10:]
	first, last := s[0].in, s[len(s)-1].in
	fps := float64(last.Frames-first.Frames) / (s[len(s)-1].at - s[0].at).Seconds()
	t.Logf("viewer: %.1f fps, %d freezes, %d of %d-ish packets lost after retransmission",
		fps, last.Freezes-first.Freezes, last.Lost-first.Lost, sent)
	if fps < 15 {
		t.Errorf("viewer decoded %.1f fps, want at least 15 of the camera's 20", fps)
	}
	if f := last.Freezes - first.Freezes; f > 1 {
		t.Errorf("viewer froze %d times in 10 s", f)
	}
	// Unrecovered, 5% of the viewer's own packets would be missing.
	if lost := last.Lost - first.Lost; lost > sent/100 {
		t.Errorf("viewer lost %d packets after retransmission, want at most %d", lost, sent/100)
	}
}
