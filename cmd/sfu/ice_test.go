package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/internal/browsertest"
	"github.com/switchboard-sfu/switchboard/internal/client"
	"github.com/switchboard-sfu/switchboard/internal/netlab"
	"github.com/switchboard-sfu/switchboard/internal/testcert"
	sig "github.com/switchboard-sfu/switchboard/signal"
)

// Tests of the media paths a deployment offers: one UDP port for all, ICE
// over TCP where UDP is blocked, and the embedded TURN relay.

// paths reports the selected candidate pair of each of the tab's
// PeerConnections, and the ports of every UDP candidate the server sent.
const paths = `(async () => {
  const out = {pairs: {}, serverUDPPorts: []};
  for (const [name, pc] of [['publisher', window.switchboard.publisher], ['subscriber', window.switchboard.subscriber]]) {
    if (!pc) continue;
    const stats = await pc.getStats();
    stats.forEach(s => {
      if (s.type === 'remote-candidate' && s.protocol === 'udp' && s.candidateType !== 'prflx') out.serverUDPPorts.push(s.port);
    });
    let pair = null;
    stats.forEach(s => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
    if (!pair) continue;
    const l = stats.get(pair.localCandidateId), r = stats.get(pair.remoteCandidateId);
    out.pairs[name] = {localType: l.candidateType, protocol: l.protocol, relayProtocol: l.relayProtocol || '',
      remoteType: r.candidateType, remotePort: r.port};
  }
  return out;
})()`

type pair struct {
	LocalType     string `json:"localType"`
	Protocol      string `json:"protocol"`
	RelayProtocol string `json:"relayProtocol"`
	RemoteType    string `json:"remoteType"`
	RemotePort    int    `json:"remotePort"`
}

type tabPaths struct {
	Pairs          map[string]pair `json:"pairs"`
	ServerUDPPorts []int           `json:"serverUDPPorts"`
}

// forceRelay makes the page's PeerConnections relay-only, as
// iceTransportPolicy "relay" in a client would; the tab must not have
// joined yet.
const forceRelay = `(() => {
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(config) { super({...config, iceTransportPolicy: 'relay'}); }
  };
  return true;
})()`

// withoutTURN makes the page's PeerConnections ignore the TURN servers the
// server hands out, as a client without TURN would; the tab must not have
// joined yet.
const withoutTURN = `(() => {
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(config) { super({...config, iceServers: []}); }
  };
  return true;
})()`

// joinForm joins through the page's form, for tabs opened without a name.
func joinForm(name string) string {
	return fmt.Sprintf(`(() => { const f = document.getElementById('join-form');
  f.elements.namedItem('name').value = %q; f.requestSubmit(); return true; })()`, name)
}

// waitReceiving waits until tab receives audio from each of ids. That
// proves the media path, which is what these tests are about; how much
// video comes depends on the bandwidth allocation, which other tests
// judge, so it is only logged.
func waitReceiving(ctx context.Context, t *testing.T, tab *browsertest.Tab, what string, ids []string) {
	t.Helper()
	var got map[string]media
	for {
		got = nil
		if err := tab.Eval(ctx, remoteMedia, &got); err == nil {
			ok := true
			for _, id := range ids {
				if got[id].Audio < 25 {
					ok = false
				}
			}
			if ok {
				t.Logf("%s receives %+v", what, got)
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not receiving from all of %v: %+v\nconsole: %s", what, ids, got, tab.Console())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func tabID(ctx context.Context, t *testing.T, tab *browsertest.Tab) string {
	t.Helper()
	var id string
	if err := tab.WaitFor(ctx, `window.switchboard && window.switchboard.you && window.switchboard.you.id`, &id); err != nil {
		t.Fatalf("tab never joined: %v\nconsole: %s", err, tab.Console())
	}
	return id
}

func tabPathsOf(ctx context.Context, t *testing.T, tab *browsertest.Tab) tabPaths {
	t.Helper()
	var p tabPaths
	if err := tab.Eval(ctx, paths, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// Chromium tabs and Pion clients share one room through the single UDP
// port: the server offers no other UDP port, and everyone's media flows.
func TestBrowserSinglePort(t *testing.T) {
	port, _ := strconv.Atoi(freePort(t, "udp"))
	s, base := startServerWith(t, func(c *Config) { c.ICE.UDPPort = port })
	if got := s.sockets.UDPAddr().Port; got != port {
		t.Fatalf("listening on UDP %d, want %d", got, port)
	}
	b := browsertest.Launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	api, err := client.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	var pions []*client.Client
	for i := range 2 {
		// A low bitrate, so that everyone's video fits the subscribers'
		// first bandwidth estimate.
		c, err := client.Join(ctx, api, wsURL(base), "one", fmt.Sprintf("pion%d", i), client.Options{Publish: true, VideoBitrate: 100_000})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		pions = append(pions, c)
	}
	tabs := []*browsertest.Tab{
		b.NewTab(t, base+"/?room=one&name=tab0"),
		b.NewTab(t, base+"/?room=one&name=tab1"),
	}
	ids := []string{tabID(ctx, t, tabs[0]), tabID(ctx, t, tabs[1])}
	for i, tab := range tabs {
		others := []string{ids[1-i], pions[0].ID, pions[1].ID}
		waitReceiving(ctx, t, tab, fmt.Sprintf("tab %d", i), others)
		p := tabPathsOf(ctx, t, tab)
		if len(p.Pairs) != 2 {
			t.Errorf("tab %d: selected pairs %+v, want publisher and subscriber", i, p.Pairs)
		}
		for name, pr := range p.Pairs {
			if pr.Protocol != "udp" || pr.RemotePort != port {
				t.Errorf("tab %d %s: pair %+v, want UDP to port %d", i, name, pr, port)
			}
		}
		for _, pt := range p.ServerUDPPorts {
			if pt != port {
				t.Errorf("tab %d: the server offered UDP port %d besides %d", i, pt, port)
			}
		}
	}
	waitUntil(t, 15*time.Second, "each Pion client to receive from everyone else", func() bool {
		for _, c := range pions {
			from := map[string]int64{}
			for _, r := range c.Received() {
				from[r.Participant] += r.Packets.Load()
			}
			for _, id := range append(ids, pions[0].ID, pions[1].ID) {
				if id != c.ID && from[id] < 25 {
					return false
				}
			}
		}
		return true
	})
}

// A participant that may only use TURN (iceTransportPolicy "relay")
// connects through the embedded TURN server, on a page served over HTTPS
// with its join token in the URL.
func TestBrowserRelay(t *testing.T) {
	cert := testcert.New(t)
	udp, _ := strconv.Atoi(freePort(t, "udp"))
	turnUDP, _ := strconv.Atoi(freePort(t, "udp"))
	turnTCP, _ := strconv.Atoi(freePort(t, "tcp"))
	s, base := startServerWith(t, func(c *Config) {
		c.TLS.Cert, c.TLS.Key = cert.CertFile, cert.KeyFile
		c.Auth.Secret = secret32
		c.ICE.UDPPort = udp
		c.TURN.Enabled, c.TURN.Host = true, "127.0.0.1"
		c.TURN.UDPPort, c.TURN.TCPPort, c.TURN.TLSPort = turnUDP, turnTCP, 0
	})
	b := browsertest.Launch(t, browsertest.WithExtraFlags("--ignore-certificate-errors-spki-list="+cert.SPKI))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	auth, _ := sig.NewAuth([]byte(secret32))

	var tabs []*browsertest.Tab
	for i := range 2 {
		tok, err := auth.Mint(sig.Grant{Identity: fmt.Sprintf("user%d", i), Room: "relay", Publish: true, Subscribe: true}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		tab := b.NewTab(t, base+"/?"+url.Values{"room": {"relay"}, "token": {tok}}.Encode())
		for _, js := range []string{forceRelay, joinForm(fmt.Sprintf("tab%d", i))} {
			if err := tab.Eval(ctx, js, nil); err != nil {
				t.Fatal(err)
			}
		}
		tabs = append(tabs, tab)
	}
	ids := []string{tabID(ctx, t, tabs[0]), tabID(ctx, t, tabs[1])}
	for i, tab := range tabs {
		waitReceiving(ctx, t, tab, fmt.Sprintf("tab %d", i), ids[1-i:2-i])
		p := tabPathsOf(ctx, t, tab)
		if len(p.Pairs) != 2 {
			t.Errorf("tab %d: selected pairs %+v, want publisher and subscriber", i, p.Pairs)
		}
		for name, pr := range p.Pairs {
			if pr.LocalType != "relay" || pr.RemotePort != udp {
				t.Errorf("tab %d %s: pair %+v, want relayed to port %d", i, name, pr, udp)
			}
		}
	}
	if n := s.relay.Allocations(); n < 4 {
		t.Errorf("%d TURN allocations, want one per PeerConnection at least", n)
	}
}

// A browser on a network that drops all UDP still connects, both ways:
// over ICE-TCP to the server's TCP port when it has no TURN server, and
// through TURN over TCP when it may only relay. It runs in a network
// namespace of its own (netlab) where iptables drops UDP; another browser,
// outside, publishes to it.
func TestBrowserWithoutUDP(t *testing.T) {
	link := netlab.New(t)
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		argv := link.Wrap("iptables", "-A", chain, "-p", "udp", "-j", "DROP")
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", argv, err, out)
		}
	}
	udp, _ := strconv.Atoi(freePort(t, "udp"))
	tcp, _ := strconv.Atoi(freePort(t, "tcp"))
	turnTCP, _ := strconv.Atoi(freePort(t, "tcp"))
	_, base := startServerWith(t, func(c *Config) {
		c.Listen = "0.0.0.0:0"
		c.ICE.UDPPort, c.ICE.TCPPort = udp, tcp
		c.TURN.Enabled, c.TURN.Host = true, link.HostIP
		c.TURN.UDPPort, c.TURN.TCPPort, c.TURN.TLSPort = 0, turnTCP, 0
	})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	near := browsertest.Launch(t)
	farOrigin := fmt.Sprintf("http://%s:%s", link.HostIP, port)
	far := launchBehind(t, link, farOrigin)
	pub := near.NewTab(t, fmt.Sprintf("http://127.0.0.1:%s/?room=tcp&name=camera", port))
	pubID := tabID(ctx, t, pub)

	farURL := farOrigin + "/?room=tcp"
	// Without TURN the browser has ICE-TCP or nothing; relay-only, it has
	// TURN over TCP (TURN over UDP is dropped too).
	direct, relayed := far.NewTab(t, farURL), far.NewTab(t, farURL)
	for tab, js := range map[*browsertest.Tab][]string{
		direct:  {withoutTURN, joinForm("direct")},
		relayed: {forceRelay, joinForm("relayed")},
	} {
		for _, js := range js {
			if err := tab.Eval(ctx, js, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	ids := map[*browsertest.Tab]string{}
	for _, v := range []struct {
		name string
		tab  *browsertest.Tab
		want func(pair) bool
	}{
		// An active TCP candidate shows up as peer-reflexive once connected.
		{"ICE-TCP", direct, func(p pair) bool { return p.LocalType != "relay" && p.Protocol == "tcp" && p.RemotePort == tcp }},
		{"TURN over TCP", relayed, func(p pair) bool { return p.LocalType == "relay" && p.RelayProtocol == "tcp" }},
	} {
		ids[v.tab] = tabID(ctx, t, v.tab)
		waitReceiving(ctx, t, v.tab, v.name, []string{pubID})
		// Both ways: the tab publishes its camera too.
		for _, pc := range []string{"publisher", "subscriber"} {
			waitUntil(t, 10*time.Second, v.name+" "+pc+" to connect", func() bool {
				_, ok := tabPathsOf(ctx, t, v.tab).Pairs[pc]
				return ok
			})
			if pr := tabPathsOf(ctx, t, v.tab).Pairs[pc]; !v.want(pr) {
				t.Errorf("%s: %s pair %+v", v.name, pc, pr)
			}
		}
	}
	waitReceiving(ctx, t, pub, "the publisher", []string{ids[direct], ids[relayed]})
}
