package cluster

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/internal/poll"
	"github.com/switchboard-sfu/switchboard/internal/testcert"
)

// Nodes reach a NATS that only speaks TLS with cluster.nats-ca, and find
// each other through it; a node that does not trust the server's
// certificate never joins.
func TestNodesOverTLS(t *testing.T) {
	cert := testcert.New(t)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), TLS: true, TLSConfig: cert.TLS, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	url := "tls://" + ns.Addr().String()

	start := func(id, ca string) *Node {
		n, err := Start(Config{NATS: []string{url}, NodeID: id, URL: "https://" + id + "/", CAFile: ca,
			RelayAddress: "127.0.0.1"}, newRooms(t), zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		return n
	}
	a, b := start("a", cert.CertFile), start("b", cert.CertFile)
	serving := func(n *Node) int {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.view.candidates(time.Now(), ""))
	}
	poll.Until(t, 10*time.Second, "a and b see each other", func() bool { return serving(a) == 2 && serving(b) == 2 })

	connz, err := ns.Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if connz.NumConns < 2 {
		t.Fatalf("%d connections at the server; want a's and b's", connz.NumConns)
	}
	for _, c := range connz.Conns {
		if c.TLSVersion == "" {
			t.Errorf("connection %q without TLS", c.Name)
		}
	}

	// Without the CA the handshake fails: c, which Start gave firstSetup
	// to set up, serves alone, and the others never see it.
	c := start("c", "")
	select {
	case <-c.Ready():
		t.Error("c set up its registry without trusting the server's certificate")
	default:
	}
	if c.stats.connected.Load() {
		t.Error("c connected without trusting the server's certificate")
	}
	if n := serving(a); n != 2 {
		t.Errorf("a sees %d serving nodes; want 2 (c must not join)", n)
	}
}
