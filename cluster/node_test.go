package cluster

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/rtc"
	"github.com/switchboard-sfu/switchboard/sfu"
)

func newRooms(t *testing.T) *sfu.Rooms {
	t.Helper()
	api, err := rtc.NewAPI(rtc.Config{Loopback: true}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	rooms := sfu.NewRooms(api, zap.NewNop())
	t.Cleanup(rooms.Close)
	return rooms
}

// startSolo starts a node without a cluster setting and waits until it is
// ready.
func startSolo(t *testing.T) *Node {
	t.Helper()
	n, err := Start(Config{NodeID: "solo"}, newRooms(t), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	select {
	case <-n.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("never ready")
	}
	return n
}

// A single node's embedded registry comes up by itself, and every join
// stays on the node.
func TestEmbeddedNode(t *testing.T) {
	n := startSolo(t)
	if n.buckets() == nil {
		t.Error("ready without a registry")
	}
	if r := n.Place(context.Background(), "room", "", ""); r != nil {
		t.Errorf("a lone node redirected a join to %+v", r)
	}
}

// A node whose embedded NATS cannot start (no temporary directory) still
// becomes ready and serves alone.
func TestEmbeddedNodeWithoutNATS(t *testing.T) {
	t.Setenv("TMPDIR", "/nonexistent/switchboard-test")
	n := startSolo(t)
	if n.buckets() != nil {
		t.Error("a registry came up without a temporary directory for NATS")
	}
	if r := n.Place(context.Background(), "room", "", ""); r != nil {
		t.Errorf("redirected to %+v without a registry", r)
	}
}

// A lease's bandwidth is the rooms' byte counters over the time between
// two refreshes.
func TestLoadMeterRates(t *testing.T) {
	var m loadMeter
	t0 := time.Now()
	if _, in, out := m.sample(t0, 5_000, 9_000); in != 0 || out != 0 {
		t.Errorf("first sample: %d, %d bit/s; want 0 (nothing to compare with)", in, out)
	}
	_, in, out := m.sample(t0.Add(2*time.Second), 5_000+250_000, 9_000+1_000_000)
	if in != 1_000_000 || out != 4_000_000 {
		t.Errorf("%d in, %d out bit/s; want 1,000,000 and 4,000,000", in, out)
	}
	if _, in, out = m.sample(t0.Add(4*time.Second), 0, 0); in != 0 || out != 0 {
		t.Errorf("counters that went back: %d, %d bit/s; want 0", in, out)
	}
}
