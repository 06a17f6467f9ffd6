// Package relay is the embedded TURN server (pion/turn): clients on networks
// that let through neither the server's UDP media port nor its ICE-TCP port
// reach it through TURN over UDP, TCP or TLS on well-known ports.
//
// It is a relay to this server only. Allocations live on 127.0.0.1 and
// forward nothing but traffic to and from the server's own media port, so
// the relay needs no ports of its own in the firewall and cannot be used to
// reach any other host or service. Credentials are issued per participant
// and can open allocations only for a short while (Credentials).
package relay

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pion/turn/v5"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/rtc"
)

// Config says where the relay listens and what it relays to.
type Config struct {
	// Host is the name or address clients dial; it goes into the URLs
	// handed out, and must match the certificate for TURN over TLS.
	Host string
	// UDPAddr, TCPAddr and TLSAddr are the listening addresses
	// ("host:port"; port 0 picks one); "" leaves that transport out.
	UDPAddr, TCPAddr, TLSAddr string
	// TLS is the server's certificate for TLSAddr.
	TLS *tls.Config
	// TTL is how long issued credentials can open allocations. An
	// allocation, once open, lives on as long as its client refreshes it.
	TTL time.Duration
	// MediaPort is the server's single UDP media port: the only port the
	// relay forwards to.
	MediaPort int
	// Local reports whether ip is one of this server's addresses (the ones
	// in its ICE candidates): the only addresses the relay forwards to.
	Local func(ip net.IP) bool
}

// Realm is the TURN realm of the server.
const Realm = "switchboard"

// allocationsPerUser bounds the allocations of one participant: a browser
// opens one per PeerConnection and TURN URL, so two connections over three
// transports make six.
const allocationsPerUser = 12

// Server is a running TURN server.
type Server struct {
	cfg    Config
	log    *zap.Logger
	secret []byte
	turn   *turn.Server
	urls   []string

	mu    sync.Mutex
	conns map[net.Conn]struct{} // TCP and TLS clients, closed by Close
	users map[string]int        // allocations per user id
}

// Start opens the listeners and serves TURN until Close.
func Start(cfg Config, log *zap.Logger) (*Server, error) {
	if cfg.Host == "" {
		return nil, errors.New("relay: no host for the TURN URLs")
	}
	if cfg.MediaPort == 0 || cfg.Local == nil {
		return nil, errors.New("relay: no media port to relay to")
	}
	s := &Server{cfg: cfg, log: log, secret: make([]byte, 32), conns: map[net.Conn]struct{}{}, users: map[string]int{}}
	// The secret never leaves the process: the server that issues the
	// credentials is the one that checks them.
	if _, err := rand.Read(s.secret); err != nil {
		return nil, err
	}

	var sc turn.ServerConfig
	var opened []interface{ Close() error }
	fail := func(err error) (*Server, error) {
		for _, c := range opened {
			_ = c.Close()
		}
		return nil, err
	}
	relay := &loopbackRelay{port: cfg.MediaPort, local: cfg.Local}
	permit := func(_ net.Addr, peer net.IP) bool { return peer.IsLoopback() || cfg.Local(peer) }
	host := net.JoinHostPort(cfg.Host, "%d")
	if cfg.UDPAddr != "" {
		pc, err := net.ListenPacket("udp4", cfg.UDPAddr)
		if err != nil {
			return fail(fmt.Errorf("turn udp: %w", err))
		}
		opened = append(opened, pc)
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{
			PacketConn: pc, RelayAddressGenerator: relay, PermissionHandler: permit})
		s.urls = append(s.urls, "turn:"+fmt.Sprintf(host, pc.LocalAddr().(*net.UDPAddr).Port)+"?transport=udp")
	}
	for _, l := range []struct {
		addr   string
		tls    bool
		scheme string
	}{{cfg.TCPAddr, false, "turn:"}, {cfg.TLSAddr, true, "turns:"}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp4", l.addr)
		if err != nil {
			return fail(fmt.Errorf("turn %s: %w", l.scheme, err))
		}
		opened = append(opened, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		tracked := net.Listener(&trackingListener{Listener: ln, s: s})
		if l.tls {
			if cfg.TLS == nil {
				return fail(errors.New("relay: TLS listener without a certificate"))
			}
			tracked = tls.NewListener(tracked, cfg.TLS)
		}
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener: tracked, RelayAddressGenerator: relay, PermissionHandler: permit})
		s.urls = append(s.urls, l.scheme+fmt.Sprintf(host, port)+"?transport=tcp")
	}
	if len(s.urls) == 0 {
		return fail(errors.New("relay: no listening address"))
	}

	sc.Realm = Realm
	sc.LoggerFactory = rtc.PionLoggerFactory(log.Named("pion"))
	sc.AuthHandler = s.authenticate
	sc.QuotaHandler = s.quota
	sc.EventHandler = turn.EventHandler{
		OnAuth: func(src, _ net.Addr, proto, username, _, method string, ok bool) {
			if !ok {
				log.Info("turn credentials refused", zap.Stringer("remote", src), zap.String("proto", proto),
					zap.String("username", username), zap.String("method", method))
			}
		},
		OnAllocationCreated: func(src, _ net.Addr, proto, user, _ string, relayAddr net.Addr, _ int) {
			s.mu.Lock()
			s.users[user]++
			s.mu.Unlock()
			log.Debug("turn allocation", zap.Stringer("remote", src), zap.String("proto", proto),
				zap.String("participant", user), zap.Stringer("relay", relayAddr))
		},
		OnAllocationDeleted: func(_, _ net.Addr, _, user, _ string) {
			s.mu.Lock()
			if s.users[user]--; s.users[user] <= 0 {
				delete(s.users, user)
			}
			s.mu.Unlock()
		},
	}
	t, err := turn.NewServer(sc)
	if err != nil {
		return fail(fmt.Errorf("turn: %w", err))
	}
	s.turn = t
	return s, nil
}

// URLs are the TURN URLs clients are given.
func (s *Server) URLs() []string { return s.urls }

// Allocations is the number of open allocations.
func (s *Server) Allocations() int { return s.turn.AllocationCount() }

// Close stops the listeners and ends every allocation and TCP connection.
func (s *Server) Close() error {
	err := s.turn.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	return err
}

func (s *Server) quota(user, _ string, src net.Addr) bool {
	s.mu.Lock()
	n := s.users[user]
	s.mu.Unlock()
	if n >= allocationsPerUser {
		s.log.Info("turn allocation refused: quota", zap.String("participant", user), zap.Stringer("remote", src))
		return false
	}
	return true
}

// trackingListener remembers accepted connections so that Close can end
// them: pion/turn closes its listeners but not the connections it took.
type trackingListener struct {
	net.Listener
	s *Server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	l.s.conns[c] = struct{}{}
	l.s.mu.Unlock()
	return &trackedConn{Conn: c, s: l.s}, nil
}

type trackedConn struct {
	net.Conn
	s *Server
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c.Conn)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
