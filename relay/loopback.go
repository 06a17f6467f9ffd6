package relay

import (
	"errors"
	"net"
	"sync"

	"github.com/pion/turn/v5"
)

var loopback = net.IPv4(127, 0, 0, 1)

var errUnsupported = errors.New("relay: only UDP allocations over IPv4 are supported")

// loopbackRelay allocates relay sockets on 127.0.0.1. Everything a
// participant relays goes to this server, which listens on every local
// address (rtc.ListenSockets), so loopback reaches it without a trip
// through the host's 1:1 NAT, and nothing outside the host can reach or be
// reached from a relay socket.
type loopbackRelay struct {
	port  int
	local func(net.IP) bool
}

func (*loopbackRelay) Validate() error { return nil }

func (r *loopbackRelay) AllocatePacketConn(conf turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	if conf.Network != "udp4" && conf.Network != "udp" {
		return nil, nil, errUnsupported
	}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	return &selfConn{PacketConn: conn, relay: r, peers: map[int]net.IP{}}, conn.LocalAddr(), nil
}

// TCP allocations (RFC 6062) are not offered: browsers do not use them.
func (*loopbackRelay) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errUnsupported
}

func (*loopbackRelay) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, errUnsupported
}

// selfConn is a relay socket. A packet for one of the server's addresses
// (its public IP, say) is sent to the same port on 127.0.0.1; a reply from
// there reads as coming from the address the client used, so the client's
// TURN permission matches and its ICE agent sees the candidate it knows.
// Anything not for the server's media port is dropped.
type selfConn struct {
	net.PacketConn
	relay *loopbackRelay

	mu    sync.Mutex
	peers map[int]net.IP // loopback port -> the server address the client used
}

func (c *selfConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua.Port != c.relay.port || !(ua.IP.IsLoopback() || c.relay.local(ua.IP)) {
		return len(b), nil // as if lost on the way
	}
	if !ua.IP.Equal(loopback) {
		c.mu.Lock()
		c.peers[ua.Port] = ua.IP
		c.mu.Unlock()
		ua = &net.UDPAddr{IP: loopback, Port: ua.Port}
	}
	return c.PacketConn.WriteTo(b, ua)
}

func (c *selfConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if ua, ok := addr.(*net.UDPAddr); ok {
		c.mu.Lock()
		ip := c.peers[ua.Port]
		c.mu.Unlock()
		if ip != nil {
			addr = &net.UDPAddr{IP: ip, Port: ua.Port}
		}
	}
	return n, addr, err
}
