package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-sfu/switchboard/internal/browsertest"
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
	mark := len(n.logs.String()) // a restart's log follows the first run's
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	waitUntil(n.t, 10*time.Second, "nats-server to listen", func() bool {
		return strings.Contains(n.logs.String()[mark:], "Server is ready")
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

const (
	clusterPort   = "8080"
	clusterAPIKey = "cluster-test-api-key-0123456789"
)

// api calls the node's HTTP API and returns the status.
func (n *clusterNode) api(method, path, body string) int {
	req, err := http.NewRequest(method, n.base()+path, strings.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+clusterAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (n *clusterNode) base() string { return "http://" + n.link.PeerIP + ":" + clusterPort }
func (n *clusterNode) ws() string   { return "ws://" + n.link.PeerIP + ":" + clusterPort + "/ws" }

// startCluster starts NATS and size nodes; extra args go to every node.
func startCluster(t *testing.T, size int, extra ...string) (*natsProcess, []*clusterNode) {
	t.Helper()
	ns := startNATS(t)
	routeBetweenNamespaces(t)
	nodes := make([]*clusterNode, size)
	for i := range nodes {
		link := netlab.New(t)
		// Media between nodes goes through the test's namespace.
		if out, err := exec.Command("ip", "netns", "exec", link.NS, "ip", "route", "add", "default", "via", link.HostIP).CombinedOutput(); err != nil {
			t.Fatalf("route: %v: %s", err, out)
		}
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

// routeBetweenNamespaces lets the nodes' namespaces reach each other
// through the test's: only in a namespace of the test's own (make test's
// unshare), never on the machine's.
func routeBetweenNamespaces(t *testing.T) {
	t.Helper()
	// A namespace of the test's own has loopback and netlab's veths only.
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Name != "lo" && !strings.HasPrefix(i.Name, "sbh") {
			if os.Getenv("CI") == "true" {
				t.Fatalf("the cluster tests need a network namespace of their own (make test runs them in one); found %s", i.Name)
			}
			t.Skipf("the cluster tests route between namespaces: run them in a network namespace of their own, as make test does (found %s)", i.Name)
		}
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (n *clusterNode) start() {
	n.t.Helper()
	bin := os.Getenv("SWITCHBOARD_SFU_BIN") // e.g. one built with -race
	if bin == "" {
		bin = builtSFU(n.t)
	}
	argv := n.link.Wrap(bin, n.args...)
	n.cmd = exec.Command(argv[0], argv[1:]...)
	n.cmd.Env = append(os.Environ(), "SWITCHBOARD_API_KEY="+clusterAPIKey)
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
	for range 5 {
		c, err := client.Join(ctx, api, wsURL, room, name, opts)
		var r *client.RedirectError
		if errors.As(err, &r) {
			wsURL = r.WebSocketURL()
			opts.Ticket = r.Ticket
			continue
		}
		if err != nil {
			t.Fatalf("%s joining at %s: %v", name, wsURL, err)
		}
		t.Cleanup(c.Close)
		return c, wsURL
	}
	t.Fatalf("%s: redirected five times", name)
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
	baseline := goroutines(nodes)
	api := pionAPI(t)
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
	// Co-located, the room costs the trunk nothing.
	for _, n := range nodes {
		for _, o := range nodes {
			if n != o {
				if sent := n.peerMetric("switchboard_cluster_relay_packets_sent_total", o.id); sent != 0 {
					t.Errorf("%s sent %s %v packets over the trunk for a room on one node", n.id, o.id, sent)
				}
			}
		}
	}

	// Everyone leaves: no rooms or tracks anywhere, goroutines back where
	// they were.
	for _, c := range clients {
		c.Close()
	}
	waitIdle(t, nodes, baseline)
}

// hostOf returns the node whose signaling URL is ws.
func hostOf(t *testing.T, nodes []*clusterNode, ws string) *clusterNode {
	t.Helper()
	for _, n := range nodes {
		if n.ws() == ws {
			return n
		}
	}
	t.Fatalf("no node at %s", ws)
	return nil
}

// A node killed with SIGKILL: its clients join again through the node they
// first dialled (or the next, if that was the dead one), are placed on a
// live node, and receive media again within 5 s; the others forget the
// dead node within the lease's 6 s.
func TestClusterNodeKilled(t *testing.T) {
	_, nodes := startCluster(t, 3)
	api := pionAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	opts := client.Options{Publish: true, VideoBitrate: 150_000, KeyframeInterval: time.Second}
	var clients []*client.Client
	var host *clusterNode
	for i, n := range nodes {
		c, at := joinCluster(ctx, t, api, n.ws(), "failover", fmt.Sprintf("p%d", i), opts)
		clients = append(clients, c)
		host = hostOf(t, nodes, at)
	}
	if clients[0].Node != host.id {
		t.Fatalf("joined.node says %q, the client is on %s", clients[0].Node, host.id)
	}
	killed := time.Now()
	host.kill(syscall.SIGKILL)

	// What the web client does when its node vanishes: join again where
	// it came in, saying which node it could not reach.
	again := make([]*client.Client, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		entry := nodes[i]
		if entry == host {
			entry = nodes[(i+1)%len(nodes)]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-c.Gone():
			case <-ctx.Done():
				return
			}
			o := opts
			o.Avoid = host.id
			again[i], _ = joinCluster(ctx, t, api, entry.ws(), "failover", fmt.Sprintf("p%d", i), o)
		}()
	}
	wg.Wait()
	ids := map[string]bool{}
	landed := map[string]bool{}
	for _, c := range again {
		if c == nil {
			t.Fatal("a client did not join again")
		}
		ids[c.ID] = true
		landed[c.Node] = true
	}
	if len(landed) != 1 || landed[host.id] {
		t.Fatalf("after the kill the room's participants are on %v", landed)
	}
	waitUntil(t, 5*time.Second-time.Since(killed), "everyone to receive everyone again within 5 s of the kill", func() bool {
		for _, c := range again {
			if !receivesFrom(c, ids) {
				return false
			}
		}
		return true
	})
	t.Logf("media back %v after the kill", time.Since(killed).Round(10*time.Millisecond))
	for _, n := range nodes {
		if n == host {
			continue
		}
		waitUntil(t, 7*time.Second-time.Since(killed), n.id+" to forget the killed node", func() bool {
			return n.metric(`switchboard_cluster_nodes{state="serving"}`) == 2
		})
	}
	t.Logf("the others forgot it %v after the kill", time.Since(killed).Round(10*time.Millisecond))
}

// SIGTERM drains a node: the others see it draining at once, its clients
// are told a node to move to, and a join that dials it is redirected.
// NATS restarted mid-call: media goes on, and the registry recovers.
func TestClusterDrainAndNATSRestart(t *testing.T) {
	ns, nodes := startCluster(t, 3, "-shutdown-grace", "20s")
	api := pionAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := client.Options{Publish: true, VideoBitrate: 150_000}
	a, at := joinCluster(ctx, t, api, nodes[0].ws(), "steady", "a", opts)
	b, _ := joinCluster(ctx, t, api, nodes[1].ws(), "steady", "b", opts)
	host := hostOf(t, nodes, at)
	ids := map[string]bool{a.ID: true, b.ID: true}
	waitUntil(t, 10*time.Second, "a and b to receive each other", func() bool { return receivesFrom(a, ids) && receivesFrom(b, ids) })

	// NATS goes away: the call goes on.
	ns.stop()
	for _, n := range nodes {
		waitUntil(t, 10*time.Second, n.id+" to notice NATS is gone", func() bool {
			return n.metric("switchboard_cluster_registry_connected") == 0
		})
	}
	frames := func(c *client.Client) (n int64) {
		for _, r := range c.Received() {
			n += r.Frames.Load()
		}
		return n
	}
	fa, fb := frames(a), frames(b)
	waitUntil(t, 5*time.Second, "frames to keep coming without NATS", func() bool { return frames(a) > fa+30 && frames(b) > fb+30 })
	ns.start()
	for _, n := range nodes {
		waitUntil(t, 15*time.Second, n.id+" to set the registry up again", func() bool {
			return n.metric("switchboard_cluster_registry_connected") == 1 && n.metric(`switchboard_cluster_nodes{state="serving"}`) == 3
		})
	}
	// The rosters are back: in the registry, whose buckets the restart
	// emptied (they are in memory), and so a join dialling another node
	// finds the room. (The other nodes' views kept the old rosters while
	// NATS was away: the join alone would not show that they came back.)
	nc, err := nats.Connect("nats://127.0.0.1:" + ns.port)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rosterKey := base64.RawURLEncoding.EncodeToString([]byte("steady")) + "." + base64.RawURLEncoding.EncodeToString([]byte(host.id))
	waitUntil(t, 5*time.Second, "the room's roster to be back in the registry", func() bool {
		kv, err := js.KeyValue(ctx, "switchboard_rooms")
		if err != nil {
			return false
		}
		e, err := kv.Get(ctx, rosterKey)
		return err == nil && strings.Contains(string(e.Value()), a.ID) && strings.Contains(string(e.Value()), b.ID)
	})
	other := nodes[0]
	if other == host {
		other = nodes[1]
	}
	waitUntil(t, 5*time.Second, "the room's roster to be back", func() bool {
		c, err := client.Join(ctx, api, other.ws(), "steady", "probe", client.Options{})
		var r *client.RedirectError
		if errors.As(err, &r) {
			return r.Node == host.id
		}
		if err == nil {
			c.Close()
		}
		return false
	})

	// SIGTERM: draining, with a node to move to.
	if err := host.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m, err := a.WaitFor(ctx, "draining")
	if err != nil {
		t.Fatal(err)
	}
	if m.URL == "" || m.Node == host.id {
		t.Fatalf("draining names %q at %q; want another node", m.Node, m.URL)
	}
	waitUntil(t, 3*time.Second, "the others to see the node draining", func() bool {
		return other.metric(`switchboard_cluster_nodes{state="draining"}`) == 1
	})
	_, err = client.Join(ctx, api, host.ws(), "steady", "late", client.Options{})
	var r *client.RedirectError
	if !errors.As(err, &r) || r.Node == host.id {
		t.Fatalf("a join at the draining node: %v, want a redirect elsewhere", err)
	}
	// The clients move where draining said; the drained node exits.
	a.Close()
	b.Close()
	a2, at2 := joinCluster(ctx, t, api, strings.Replace(m.URL, "http://", "ws://", 1)+"ws", "steady", "a", opts)
	b2, _ := joinCluster(ctx, t, api, nodes[2].ws(), "steady", "b", opts)
	if at2 == host.ws() {
		t.Fatal("moved to the draining node")
	}
	ids = map[string]bool{a2.ID: true, b2.ID: true}
	waitUntil(t, 10*time.Second, "a and b to receive each other on the new node", func() bool { return receivesFrom(a2, ids) && receivesFrom(b2, ids) })
	err = host.cmd.Wait()
	host.cmd = nil
	if err != nil {
		t.Errorf("the drained node exited with %v", err)
	}
}

// The web client in a cluster: its join, dialled at a node without the
// room, is redirected to the node with it; when that node is killed, the
// tab goes back in through the node its page came from, is placed on a
// live node, and decodes again.
func TestBrowserClusterRedirectAndFailover(t *testing.T) {
	_, nodes := startCluster(t, 3)
	api := pionAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := client.Options{Publish: true, VideoBitrate: 200_000, KeyframeInterval: time.Second}
	pub, at := joinCluster(ctx, t, api, nodes[1].ws(), "web", "pion", opts)
	host := hostOf(t, nodes, at)
	entry := nodes[0]
	if entry == host {
		entry = nodes[2]
	}
	// The nodes are at plain-http addresses: resolvable, and secure
	// enough for the camera, as localhost would be.
	rules := "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
	var origins []string
	for _, n := range nodes {
		rules += ", EXCLUDE " + n.link.PeerIP
		origins = append(origins, n.base())
	}
	tab := browsertest.Launch(t, browsertest.WithExtraFlags(rules,
		"--unsafely-treat-insecure-origin-as-secure="+strings.Join(origins, ","))).NewTab(t, entry.base()+"/?room=web&name=tab")
	decodes := func(id string) func() bool {
		return func() bool {
			var v callView
			if err := tab.Eval(ctx, callViewJS, &v); err != nil {
				t.Fatal(err)
			}
			return v.Media[id].Frames > 0
		}
	}
	waitUntil(t, 20*time.Second, "the tab, redirected from "+entry.id+" to "+host.id+", to decode the publisher", decodes(pub.ID))
	if r := host.metric("switchboard_participants"); r != 2 {
		t.Errorf("%s has %v participants, want the publisher and the tab", host.id, r)
	}

	killed := time.Now()
	host.kill(syscall.SIGKILL)
	<-pub.Gone()
	o := opts
	o.Avoid = host.id
	pub2, _ := joinCluster(ctx, t, api, entry.ws(), "web", "pion", o)
	waitUntil(t, 15*time.Second, "the tab to decode the publisher again on a live node", decodes(pub2.ID))
	t.Logf("the tab decodes again %.1f s after the kill", time.Since(killed).Seconds())
	var errs []string
	if err := tab.Eval(ctx, `window.switchboard.errors`, &errs); err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		t.Errorf("the tab shows errors: %q", errs)
	}
}

// counter sums a labelled metric of a node over its peers, or reads one.
func (n *clusterNode) peerMetric(name, peer string) float64 {
	return n.metric(name + `{peer="` + peer + `"}`)
}

// A room past its per-node cap spreads over nodes: everyone receives
// everyone; each node sends each other node one copy of what it demands,
// however many subscribers it has there; nothing once they have left.
func TestClusterRoomAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 3, "-max-participants-per-node-room", "1")
	baseline := goroutines(nodes)
	api := pionAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := client.Options{Publish: true, VideoBitrate: 150_000}
	byNode := map[string]*client.Client{}
	ids := map[string]bool{}
	var clients []*client.Client
	for i, n := range nodes {
		o := opts
		o.Speaking = i == 0
		c, _ := joinCluster(ctx, t, api, n.ws(), "wide", fmt.Sprintf("p%d", i), o)
		byNode[c.Node] = c
		ids[c.ID] = true
		clients = append(clients, c)
	}
	if len(byNode) != 3 {
		t.Fatalf("with one participant per node the room is on %d nodes, want 3", len(byNode))
	}
	// A viewer joins as well: a second subscriber on one of the nodes.
	viewer, _ := joinCluster(ctx, t, api, nodes[0].ws(), "wide", "viewer", client.Options{})
	waitUntil(t, 20*time.Second, "everyone to receive everyone's video across the nodes", func() bool {
		for _, c := range append(clients, viewer) {
			if !receivesFrom(c, ids) {
				return false
			}
		}
		return true
	})
	// Chat crosses the nodes: everyone gets p0's message, once.
	for _, c := range append(clients, viewer) {
		select {
		case <-c.DataOpen():
		case <-ctx.Done():
			t.Fatal("a data channel did not open")
		}
	}
	if err := clients[0].SendData(map[string]string{"type": "chat", "text": "hello from " + clients[0].Node}); err != nil {
		t.Fatal(err)
	}
	for _, c := range append(clients[1:], viewer) {
		if err := waitChat(ctx, c, "hello from "+clients[0].Node); err != nil {
			t.Fatalf("%s on %s: %v", c.ID, c.Node, err)
		}
	}

	// p0 speaks: the others, on other nodes, see it ranked first.
	for _, c := range clients[1:] {
		if err := waitSpeaker(ctx, c, clients[0].ID); err != nil {
			t.Fatalf("%s on %s: %v", c.ID, c.Node, err)
		}
	}

	// One copy per demanded layer: audio and video of each node's one
	// publisher to each other node, whatever the number of subscribers.
	for _, n := range nodes {
		for _, o := range nodes {
			if n == o {
				continue
			}
			waitUntil(t, 5*time.Second, n.id+" to relay two streams to "+o.id, func() bool {
				return n.peerMetric("switchboard_cluster_relay_streams", o.id) == 2
			})
		}
	}
	// What a node's own publisher sends it: all it reads, less what the
	// other nodes relay to it (their publishers' tracks are read here too).
	n0, n1 := nodes[0], nodes[1]
	ownIn := func() float64 {
		in := n0.metric("switchboard_packets_received_total")
		for _, o := range nodes[1:] {
			in -= n0.peerMetric("switchboard_cluster_relay_packets_received_total", o.id)
		}
		return in
	}
	in0, out0 := ownIn(), n0.peerMetric("switchboard_cluster_relay_packets_sent_total", n1.id)
	waitUntil(t, 10*time.Second, "a few seconds of packets", func() bool { return ownIn()-in0 > 200 })
	in1, out1 := ownIn(), n0.peerMetric("switchboard_cluster_relay_packets_sent_total", n1.id)
	if ratio := (out1 - out0) / (in1 - in0); ratio < 0.9 || ratio > 1.1 {
		t.Errorf("%s sent %s %.2f packets per packet its publisher sent it; want one copy", n0.id, n1.id, ratio)
	} else {
		t.Logf("%s sent %s %.3f packets per packet its publisher sent it", n0.id, n1.id, ratio)
	}
	// Moderation through another node's API: p1 is muted, the viewer
	// removed, each told by its own node.
	p1 := clients[1]
	if code := n0.api("POST", "/api/rooms/wide/participants/"+p1.ID+"/mute", `{"kind":"audio"}`); code != http.StatusNoContent {
		t.Fatalf("mute %s on %s through %s: %d", p1.ID, p1.Node, n0.id, code)
	}
	if err := waitType(ctx, p1, "muted"); err != nil {
		t.Fatalf("%s on %s: %v", p1.ID, p1.Node, err)
	}
	via := nodes[0]
	if viewer.Node == via.id {
		via = nodes[1]
	}
	if code := via.api("DELETE", "/api/rooms/wide/participants/"+viewer.ID, `{"reason":"test"}`); code != http.StatusNoContent {
		t.Fatalf("remove the viewer on %s through %s: %d", viewer.Node, via.id, code)
	}
	select {
	case <-viewer.Gone():
	case <-time.After(5 * time.Second):
		t.Fatalf("the viewer on %s, removed through %s, is still connected", viewer.Node, via.id)
	}

	// A node of the room killed: the others drop its participant within
	// the lease's 6 s, and a stops relaying to it.
	victim := nodes[2]
	gone := byNode[victim.id]
	killed := time.Now()
	victim.kill(syscall.SIGKILL)
	for _, c := range clients {
		if c.Node == victim.id {
			continue
		}
		if err := waitLeft(ctx, c, gone.ID, 7*time.Second-time.Since(killed)); err != nil {
			t.Fatalf("%s on %s: %v", c.ID, c.Node, err)
		}
	}
	t.Logf("the others dropped the killed node's participant %.1f s after the kill", time.Since(killed).Seconds())

	// Everyone but the participant of node a leaves: a relays nothing more.
	for _, c := range append(clients, viewer) {
		if c.Node != n0.id || c == viewer {
			c.Close()
		}
	}
	for _, o := range nodes[1:2] {
		waitUntil(t, 8*time.Second, n0.id+" to stop relaying to "+o.id, func() bool {
			return n0.peerMetric("switchboard_cluster_relay_streams", o.id) == 0
		})
	}
	if v := n0.peerMetric("switchboard_cluster_relay_streams", victim.id); v > 0 {
		t.Errorf("%s still relays %v streams to the killed %s", n0.id, v, victim.id)
	}
	sent := n0.peerMetric("switchboard_cluster_relay_packets_sent_total", n1.id)
	from := ownIn()
	waitUntil(t, 5*time.Second, "another second of packets from the last publisher", func() bool { return ownIn()-from > 100 })
	if now := n0.peerMetric("switchboard_cluster_relay_packets_sent_total", n1.id); now != sent {
		t.Errorf("%s sent %v more packets to %s after its subscribers left", n0.id, now-sent, n1.id)
	}

	// The last one leaves: no rooms, tracks or relay streams anywhere, and
	// goroutines back where they were.
	for _, c := range clients {
		c.Close()
	}
	waitIdle(t, nodes[:2], baseline)
}

// Simulcast across the relay: a subscriber showing a small tile on one
// node gets the low layer of a publisher on another, an uncapped one on a
// third node the high layer; each node is sent the layers its subscribers
// are forwarded and the lowest, no others.
func TestClusterSimulcastAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 3, "-max-participants-per-node-room", "1")
	api := pionAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub, _ := joinCluster(ctx, t, api, nodes[0].ws(), "layers", "pub", client.Options{Publish: true, Simulcast: true, VideoBitrate: 900_000})
	small, _ := joinCluster(ctx, t, api, nodes[1].ws(), "layers", "small", client.Options{})
	big, _ := joinCluster(ctx, t, api, nodes[2].ws(), "layers", "big", client.Options{})
	if pub.Node == small.Node || pub.Node == big.Node || small.Node == big.Node {
		t.Fatalf("placed on %s, %s, %s; want three nodes", pub.Node, small.Node, big.Node)
	}
	ids := map[string]bool{pub.ID: true}
	waitUntil(t, 15*time.Second, "both viewers to receive the publisher", func() bool {
		return receivesFrom(small, ids) && receivesFrom(big, ids)
	})
	var video string
	for id, r := range small.Received() {
		if r.Kind == "video" {
			video = id
		}
	}
	if err := small.Send(client.Message{Type: "track-settings", TrackID: video, Width: 160, Height: 90}); err != nil {
		t.Fatal(err)
	}
	var origin *clusterNode
	for _, n := range nodes {
		if n.id == pub.Node {
			origin = n
		}
	}
	rate := func(c *client.Client) float64 {
		var b int64
		for _, r := range c.Received() {
			if r.Kind == "video" {
				b += r.Bytes.Load()
			}
		}
		return float64(b)
	}
	// Bytes over windows of at least a second, between the polls.
	var sb, bb float64
	from, s0, b0 := time.Now(), rate(small), rate(big)
	waitUntil(t, 20*time.Second, "the uncapped viewer to get several times the capped one's video", func() bool {
		if time.Since(from) < time.Second {
			return false
		}
		secs := time.Since(from).Seconds()
		s1, b1 := rate(small), rate(big)
		sb, bb = (s1-s0)/secs, (b1-b0)/secs
		from, s0, b0 = time.Now(), s1, b1
		return bb > 3*sb && sb > 0 && bb*8 > 600_000
	})
	t.Logf("video received per second: small tile %.0f kbit, uncapped %.0f kbit", sb*8/1000, bb*8/1000)
	// The uncapped viewer is on the full layer (900 kbit/s; the middle one
	// is 270): its node is sent that layer and the lowest, for a fast fall
	// back, and not the middle one; the small tile's node the lowest. Each
	// with the audio.
	waitUntil(t, 10*time.Second, "the origin to send the layers each node needs", func() bool {
		return origin.peerMetric("switchboard_cluster_relay_streams", small.Node) == 2 &&
			origin.peerMetric("switchboard_cluster_relay_streams", big.Node) == 3
	})
}

// waitChat waits for a chat message with text to reach c.
func waitChat(ctx context.Context, c *client.Client, text string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		select {
		case m := <-c.DataMessages():
			if m.Type == "chat" && m.Text == text {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("no chat %q", text)
		}
	}
}

// waitMessage waits up to limit for a signaling message to c that match
// accepts; what names it in the error.
func waitMessage(ctx context.Context, c *client.Client, limit time.Duration, what string, match func(client.Message) bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		select {
		case m := <-c.Messages:
			if match(m) {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("no %s within %v", what, limit)
		}
	}
}

func waitLeft(ctx context.Context, c *client.Client, id string, limit time.Duration) error {
	return waitMessage(ctx, c, limit, "participant-left for "+id, func(m client.Message) bool {
		return m.Type == "participant-left" && m.Participant != nil && m.Participant.ID == id
	})
}

func waitSpeaker(ctx context.Context, c *client.Client, id string) error {
	return waitMessage(ctx, c, 5*time.Second, id+" first among the speakers", func(m client.Message) bool {
		return m.Type == "speakers" && len(m.Speakers) > 0 && m.Speakers[0].Participant == id
	})
}

func waitType(ctx context.Context, c *client.Client, typ string) error {
	return waitMessage(ctx, c, 5*time.Second, typ+" message", func(m client.Message) bool { return m.Type == typ })
}

func pionAPI(t *testing.T) *webrtc.API {
	t.Helper()
	api, err := client.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// goroutines is each node's goroutine count now, a baseline for waitIdle.
func goroutines(nodes []*clusterNode) map[string]float64 {
	out := map[string]float64{}
	for _, n := range nodes {
		out[n.id] = n.metric("go_goroutines")
	}
	return out
}

// waitIdle waits until each of nodes has no rooms, participants, tracks or
// streams relayed to the others, and no more goroutines than at baseline.
func waitIdle(t *testing.T, nodes []*clusterNode, baseline map[string]float64) {
	t.Helper()
	for _, n := range nodes {
		waitUntil(t, 10*time.Second, n.id+" to be idle again", func() bool {
			if n.metric("switchboard_rooms") != 0 || n.metric("switchboard_participants") != 0 ||
				n.metric(`switchboard_tracks{kind="video"}`) > 0 || n.metric(`switchboard_tracks{kind="audio"}`) > 0 {
				return false
			}
			for _, o := range nodes {
				if o != n && n.peerMetric("switchboard_cluster_relay_streams", o.id) > 0 {
					return false
				}
			}
			return n.metric("go_goroutines") <= baseline[n.id]
		})
	}
}
