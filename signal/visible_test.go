package signal_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	pionclient "github.com/switchboard-sfu/switchboard/internal/client"
	"github.com/switchboard-sfu/switchboard/signal"
)

// A video hidden long enough that its publisher stopped encoding it (a tab
// in the background) is back within a keyframe when shown again, not after
// an upgrade's hold: it starts as a new subscription does.
func TestVideoBackWhenShownAgain(t *testing.T) {
	s := newServer(t)
	api, err := pionclient.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	pub, err := pionclient.Join(ctx, api, s.url, "r", "Pub", pionclient.Options{Publish: true, Simulcast: true, VideoBitrate: 1_500_000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	viewer := joinPion(t, s, "Viewer")
	receiving(t, viewer, pub.ID, "the viewer")
	var trackID string
	for id, r := range viewer.Received() {
		if r.Participant == pub.ID && r.Kind == "video" {
			trackID = id
		}
	}
	video := func() (packets, keyframes int64) { return received(viewer, pub.ID, "video") }
	settings := func(w, h int) {
		if err := viewer.SendRaw([]byte(fmt.Sprintf(`{"type":"track-settings","trackId":%q,"width":%d,"height":%d}`, trackID, w, h))); err != nil {
			t.Fatal(err)
		}
	}

	// Up to three tries: one can be slowed by a bandwidth estimate that
	// dipped on a busy machine; the hold this test guards against made
	// every one take over 2 s.
	var tries []time.Duration
	for range 3 {
		settings(0, 0)
		// Hidden until dynacast has switched every layer off at the publisher.
		for {
			m, err := waitForAny(ctx, pub, signal.TypePublishLayers)
			if err != nil {
				t.Fatalf("the publisher was never told to stop encoding the hidden video: %v", err)
			}
			if len(m.Active) == 0 {
				break
			}
		}
		p0, k0 := video()
		shown := time.Now()
		settings(1280, 720)
		for {
			p, k := video()
			if p > p0 && k > k0 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal("no video after the tile was shown again")
			case <-time.After(10 * time.Millisecond):
			}
		}
		took := time.Since(shown)
		tries = append(tries, took.Round(time.Millisecond))
		if took <= time.Second {
			t.Logf("video back with a keyframe %v after it was shown again", tries)
			return
		}
	}
	t.Errorf("video back %v after it was shown again; want within a second", tries)
}
