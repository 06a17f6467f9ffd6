package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-sfu/switchboard/internal/client"
	"github.com/switchboard-sfu/switchboard/internal/netlab"
)

// A cluster for tests: a NATS server (the module's own nats-server, built
// with go build) in the test's network namespace, and server processes in
// namespaces of their own, each joined to the test's by a veth pair. Nodes
// reach NATS, and clients reach nodes, only over those links, so a node
// killed or cut off is gone the way a machine would be.

var (
	natsBuildOnce sync.Once
	natsBinary    string
	natsBuildErr  error
)

// builtNATS builds the nats-server command of the module's NATS version.
func builtNATS(t *testing.T) string {
	t.Helper()
	natsBuildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchboard-nats-bin-")
		if err != nil {
			natsBuildErr = err
			return
		}
		natsBinary = dir + "/nats-server"
		out, err := exec.Command("go", "build", "-o", natsBinary, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsBuildErr = fmt.Errorf("building nats-server: %v\n%s", err, out)
		}
	})
	if natsBuildErr != nil {
		t.Fatal(natsBuildErr)
	}
	return natsBinary
}

type natsProcess struct {
	t    *testing.T
	port string
	dir  string
	cmd  *exec.Cmd
	logs *lockedBuffer
}

// startNATS runs nats-server with JetStream on all of the test namespace's
// addresses.
func startNATS(t *testing.T) *natsProcess {
	t.Helper()
	n := &natsProcess{t: t, port: freePort(t, "tcp"), dir: t.TempDir(), logs: &lockedBuffer{}}
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("nats-server log:\n%s", n.logs.String())
		}
	})
	n.start()
	return n
}

func (n *natsProcess) start() {
	n.t.Helper()
	n.cmd = exec.Command(builtNATS(n.t), "-a", "0.0.0.0", "-p", n.port, "-js", "-sd", n.dir)
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	waitUntil(n.t, 10*time.Second, "nats-server to listen", func() bool {
		return strings.Contains(n.logs.String(), "Server is ready")
	})
}

func (n *natsProcess) stop() {
	if n.cmd != nil {
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
		n.cmd = nil
	}
}

// clusterNode is one server process of a test cluster.
type clusterNode struct {
	t    *testing.T
	id   string
	link *netlab.Link
	args []string
	cmd  *exec.Cmd
	logs *lockedBuffer
}

const clusterPort = "8080"

func (n *clusterNode) base() string { return "http://" + n.link.PeerIP + ":" + clusterPort }
func (n *clusterNode) ws() string   { return "ws://" + n.link.PeerIP + ":" + clusterPort + "/ws" }

// startCluster starts NATS and size nodes; extra args go to every node.
func startCluster(t *testing.T, size int, extra ...string) (*natsProcess, []*clusterNode) {
	t.Helper()
	ns := startNATS(t)
	nodes := make([]*clusterNode, size)
	for i := range nodes {
		link := netlab.New(t)
		n := &clusterNode{t: t, id: fmt.Sprintf("node%c", 'a'+i), link: link, logs: &lockedBuffer{}}
		n.args = append([]string{"-listen", link.PeerIP + ":" + clusterPort, "-log-level", "debug",
			"-cluster-nats", "nats://" + link.HostIP + ":" + ns.port, "-node-id", n.id,
			"-advertise-url", n.base() + "/", "-resume-grace", "2s",
			"-max-connections-per-ip", "0", "-max-messages-per-second", "0"}, extra...)
		t.Cleanup(func() {
			n.kill(syscall.SIGTERM)
			if t.Failed() {
				t.Logf("%s log:\n%s", n.id, n.logs.String())
			}
		})
		nodes[i] = n
		n.start()
	}
	// Every node sees every other before the test places anything.
	for _, n := range nodes {
		waitUntil(t, 10*time.Second, n.id+" to see the whole cluster", func() bool {
			return n.metric(`switchboard_cluster_nodes{state="serving"}`) == float64(size)
		})
	}
	return ns, nodes
}

func (n *clusterNode) start() {
	n.t.Helper()
	argv := n.link.Wrap(builtSFU(n.t), n.args...)
	n.cmd = exec.Command(argv[0], argv[1:]...)
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	waitUntil(n.t, 10*time.Second, n.id+" to be ready", func() bool { return httpStatus(n.base()+"/readyz") == http.StatusOK })
}

// kill sends sig and waits for the process to exit.
func (n *clusterNode) kill(sig syscall.Signal) {
	if n.cmd == nil {
		return
	}
	// ip netns exec execs the server, so the process is the server itself.
	_ = n.cmd.Process.Signal(sig)
	err := n.cmd.Wait()
	fmt.Fprintf(n.logs, "---- exited: %v ----\n", err)
	n.cmd = nil
}

// metric reads one sample of the node's /metrics, by its full name with
// labels as printed; -1 when it is missing or the node does not answer.
func (n *clusterNode) metric(name string) float64 {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(n.base() + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// joinCluster joins room at the node at wsURL, following redirects, and
// returns the client and the signaling URL it ended on.
func joinCluster(ctx context.Context, t *testing.T, api *webrtc.API, wsURL, room, name string, opts client.Options) (*client.Client, string) {
	t.Helper()
	for range 3 {
		c, err := client.Join(ctx, api, wsURL, room, name, opts)
		var r *client.RedirectError
		if errors.As(err, &r) {
			wsURL = r.WebSocketURL()
			continue
		}
		if err != nil {
			t.Fatalf("%s joining at %s: %v", name, wsURL, err)
		}
		t.Cleanup(c.Close)
		return c, wsURL
	}
	t.Fatalf("%s: redirected three times", name)
	return nil, ""
}

// receivesFrom says whether c gets video from every participant in ids.
func receivesFrom(c *client.Client, ids map[string]bool) bool {
	got := map[string]bool{}
	for _, r := range c.Received() {
		if r.Kind == "video" && r.Frames.Load() > 2 {
			got[r.Participant] = true
		}
	}
	for id := range ids {
		if id != c.ID && !got[id] {
			return false
		}
	}
	return true
}

// Four clients dialling three nodes for one small room end up on one node,
// and all see one another.
func TestClusterRoomStaysOnOneNode(t *testing.T) {
	_, nodes := startCluster(t, 3)
	api, err := client.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var clients []*client.Client
	landed := map[string]bool{}
	ids := map[string]bool{}
	for i, n := range []*clusterNode{nodes[0], nodes[1], nodes[2], nodes[1]} {
		start := time.Now()
		c, at := joinCluster(ctx, t, api, n.ws(), "small", fmt.Sprintf("p%d", i), client.Options{Publish: true, VideoBitrate: 150_000})
		t.Logf("p%d dialled %s, joined at %s in %v", i, n.id, at, time.Since(start).Round(time.Millisecond))
		clients = append(clients, c)
		landed[at] = true
		ids[c.ID] = true
	}
	if len(landed) != 1 {
		t.Fatalf("the room's participants landed on %d nodes: %v", len(landed), landed)
	}
	waitUntil(t, 15*time.Second, "everyone to receive everyone's video", func() bool {
		for _, c := range clients {
			if !receivesFrom(c, ids) {
				return false
			}
		}
		return true
	})
	var redirects float64
	for _, n := range nodes {
		redirects += n.metric("switchboard_cluster_redirects_total")
	}
	if redirects < 2 {
		t.Errorf("%v redirects in all; three of the four joins dialled a node without the room (at least two of them another node)", redirects)
	}
}
