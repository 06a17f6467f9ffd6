package relay

import (
	"bytes"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/internal/testcert"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// publicIP stands in for the address a host behind 1:1 NAT announces. It is
// on loopback so that a relay that failed to translate it still sends
// nothing off the machine; nothing listens there, so such a relay fails.
var publicIP = net.IPv4(127, 0, 0, 2)

// echo is the server's media port in these tests: it sends back what it gets.
func echo(t *testing.T) *net.UDPAddr {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr)
}

func start(t *testing.T, media int, ttl time.Duration) (*Server, *testcert.Cert) {
	cert := testcert.New(t)
	s, err := Start(Config{
		Host:    "127.0.0.1",
		UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0",
		TLS:       cert.TLS,
		TTL:       ttl,
		MediaPort: media,
		Local:     func(ip net.IP) bool { return ip.Equal(publicIP) },
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, cert
}

// dial opens a TURN client to url ("turn:127.0.0.1:PORT?transport=udp").
func dial(t *testing.T, url string, cert *testcert.Cert, user, pass string) *turn.Client {
	t.Helper()
	hostPort := strings.TrimPrefix(strings.TrimPrefix(strings.Split(url, "?")[0], "turns:"), "turn:")
	var conn net.PacketConn
	switch {
	case strings.HasSuffix(url, "transport=udp"):
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn = pc
	case strings.HasPrefix(url, "turns:"):
		c, err := tls.Dial("tcp4", hostPort, &tls.Config{RootCAs: cert.Pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	default:
		c, err := net.Dial("tcp4", hostPort)
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	}
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: hostPort, TURNServerAddr: hostPort, Conn: conn,
		Username: user, Password: pass, Realm: Realm, RTO: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); _ = conn.Close() })
	return c
}

// Over each transport a participant's credentials open an allocation, and
// packets relayed to the server's public address reach its media port over
// loopback and come back as if from the public address.
func TestRelayToMediaPort(t *testing.T) {
	media := echo(t)
	s, cert := start(t, media.Port, time.Minute)
	creds := s.Credentials("p1")
	if len(creds.URLs) != 3 {
		t.Fatalf("URLs %v, want udp, tcp and tls", creds.URLs)
	}
	for _, url := range creds.URLs {
		t.Run(url, func(t *testing.T) {
			c := dial(t, url, cert, creds.Username, creds.Credential)
			relayed, err := c.Allocate()
			if err != nil {
				t.Fatalf("allocate: %v", err)
			}
			defer relayed.Close()
			if ip := relayed.LocalAddr().(*net.UDPAddr).IP; !ip.IsLoopback() {
				t.Errorf("relay address %v is not on loopback", ip)
			}
			peer := &net.UDPAddr{IP: publicIP, Port: media.Port}
			got := roundTrip(t, relayed, peer, []byte("hello "+url))
			if from := got.(*net.UDPAddr); !from.IP.Equal(publicIP) || from.Port != media.Port {
				t.Errorf("reply came from %v, want %v", from, peer)
			}
		})
	}
}

func roundTrip(t *testing.T, relayed net.PacketConn, peer net.Addr, msg []byte) net.Addr {
	t.Helper()
	buf := make([]byte, 1500)
	// The first packet may race the permission it creates; resend until the echo comes.
	for range 20 {
		if _, err := relayed.WriteTo(msg, peer); err != nil {
			t.Fatalf("write: %v", err)
		}
		_ = relayed.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		n, from, err := relayed.ReadFrom(buf)
		if err == nil && bytes.Equal(buf[:n], msg) {
			return from
		}
	}
	t.Fatal("nothing came back through the relay")
	return nil
}

// The relay forwards to the server's media port and nothing else: other
// hosts are refused a permission, and other ports of the server see nothing.
func TestRelayOnlyToServer(t *testing.T) {
	media := echo(t)
	other := echo(t) // another UDP service on the same host
	s, cert := start(t, media.Port, time.Minute)
	creds := s.Credentials("p1")
	c := dial(t, creds.URLs[0], cert, creds.Username, creds.Credential)
	relayed, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()
	// A documentation address: the permission is refused at the server,
	// so nothing is ever sent to it.
	if err := c.CreatePermission(&net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: media.Port}); err == nil {
		t.Error("permission to another host granted")
	}
	if _, err := relayed.WriteTo([]byte("x"), &net.UDPAddr{IP: publicIP, Port: other.Port}); err != nil {
		t.Fatal(err)
	}
	_ = relayed.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, from, err := relayed.ReadFrom(make([]byte, 1500)); err == nil {
		t.Errorf("a packet to port %d was relayed (reply from %v)", other.Port, from)
	}
}

func TestCredentials(t *testing.T) {
	media := echo(t)
	s, cert := start(t, media.Port, time.Minute)
	good := s.Credentials("p1")
	if !strings.HasSuffix(good.Username, ":p1") {
		t.Errorf("username %q does not name the participant", good.Username)
	}
	expired := "1000000000:p1" // 2001
	cases := []struct {
		name, user, pass string
		ok               bool
	}{
		{"issued", good.Username, good.Credential, true},
		{"forged password", good.Username, "c2VjcmV0", false},
		{"another participant's password", strings.TrimSuffix(good.Username, "p1") + "p2", good.Credential, false},
		{"later expiry, same password", "9" + good.Username, good.Credential, false},
		{"expired", expired, s.password(expired), false},
		{"no expiry", "p1", s.password("p1"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, good.URLs[0], cert, tc.user, tc.pass)
			relayed, err := c.Allocate()
			if err == nil {
				relayed.Close()
			}
			if (err == nil) != tc.ok {
				t.Errorf("allocate: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestQuota(t *testing.T) {
	media := echo(t)
	s, cert := start(t, media.Port, time.Minute)
	creds := s.Credentials("greedy")
	for i := range allocationsPerUser + 1 {
		c := dial(t, creds.URLs[0], cert, creds.Username, creds.Credential)
		relayed, err := c.Allocate()
		if i < allocationsPerUser && err != nil {
			t.Fatalf("allocation %d refused: %v", i+1, err)
		}
		if i == allocationsPerUser && err == nil {
			t.Fatalf("allocation %d granted, quota is %d", i+1, allocationsPerUser)
		}
		if err == nil {
			defer relayed.Close()
		}
	}
}
