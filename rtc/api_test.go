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
			pc, est, _, err := api.NewPeerConnection(webrtc.Configuration{})
			if err != nil {
				t.Error(err)
				return
			}
			defer pc.Close()
			ests[i] = est.(*estimator)
		})
	}
	wg.Wait()
	gccs, links := map[any]bool{}, map[*linkMonitor]bool{}
	for i, e := range ests {
		if e == nil || e.gcc == nil || e.link == nil {
			t.Fatalf("connection %d: estimator %+v, want GCC and a link monitor", i, e)
		}
		gccs[e.gcc], links[e.link] = true, true
	}
	if len(gccs) != n || len(links) != n {
		t.Errorf("%d connections share %d GCC estimators and %d link monitors", n, len(gccs), len(links))
	}
}
