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

// A single node's embedded registry comes up by itself, and every join
// stays on the node.
func TestEmbeddedNode(t *testing.T) {
	n, err := Start(Config{NodeID: "solo"}, newRooms(t), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	select {
	case <-n.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the embedded registry was not set up")
	}
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
	n, err := Start(Config{NodeID: "solo"}, newRooms(t), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	select {
	case <-n.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("never ready without NATS")
	}
	if r := n.Place(context.Background(), "room", "", ""); r != nil {
		t.Errorf("redirected to %+v without a registry", r)
	}
}
