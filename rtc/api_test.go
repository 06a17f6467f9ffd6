package rtc

import (
	"sync"
	"testing"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// Connections made at once each get their own estimator.
func TestNewPeerConnectionEstimators(t *testing.T) {
	api, err := NewAPI(Config{Loopback: true}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	ests := make([]*estimator, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			pc, est, _, err := api.NewSubscriber(webrtc.Configuration{})
			if err != nil {
				t.Error(err)
				return
			}
			defer pc.Close()
			ests[i] = est.(*estimator)
		})
	}
	wg.Wait()
	links := map[*linkMonitor]bool{}
	for i, e := range ests {
		if e == nil || e.link == nil {
			t.Fatalf("connection %d: estimator %+v, want a link monitor", i, e)
		}
		links[e.link] = true
	}
	if len(links) != n {
		t.Errorf("%d connections share %d link monitors", n, len(links))
	}
}
