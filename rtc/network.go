package rtc

import (
	"errors"
	"fmt"
	"net"

	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// Sockets are ICE sockets shared by every PeerConnection of the server: one
// UDP port for all peers (single-port mode, so that a firewall needs one
// rule instead of a range) and one TCP port for clients on networks that
// block UDP. Open them with ListenSockets, put them in Config.Sockets, and
// Close them after the last PeerConnection is closed.
type Sockets struct {
	udp     net.PacketConn
	batcher *Batcher // of udp
	tcp     net.Listener
	udpMux  interface{ Close() error }
	tcpMux  interface{ Close() error }
	apply   []func(*webrtc.SettingEngine)
}

// ListenSockets opens the UDP socket at udpAddr and the TCP listener at
// tcpAddr ("host:port"; port 0 picks one; "" leaves that one out).
//
// The UDP socket listens on the address given, usually the wildcard: one
// socket then answers on every local address, loopback included, which is
// what lets the embedded TURN relay (package relay) reach the server over
// 127.0.0.1 instead of hairpinning through a 1:1 NAT. Candidates are still
// gathered per interface address, without loopback unless Config.Loopback.
// IPv4 only.
func ListenSockets(udpAddr, tcpAddr string, log *zap.Logger) (*Sockets, error) {
	logs := zapLoggerFactory{log.Named("pion")}
	s := &Sockets{}
	if udpAddr != "" {
		conn, err := net.ListenPacket("udp4", udpAddr)
		if err != nil {
			return nil, fmt.Errorf("ice udp port: %w", err)
		}
		s.udp = conn
		if uc, ok := conn.(*net.UDPConn); ok {
			// Every peer's writes share the socket, and so one batch.
			s.batcher = NewBatcher(SendGSO)
			s.udp = NewBatchConn(uc, s.batcher)
		}
		mux := webrtc.NewICEUDPMux(quietWildcard{logs.NewLogger("ice-udp")}, s.udp)
		s.udpMux = mux
		s.apply = append(s.apply, func(se *webrtc.SettingEngine) { se.SetICEUDPMux(mux) })
	}
	if tcpAddr != "" {
		l, err := net.Listen("tcp4", tcpAddr)
		if err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("ice tcp port: %w", err)
		}
		s.tcp = l
		mux := webrtc.NewICETCPMux(logs.NewLogger("ice-tcp"), l, 8)
		s.tcpMux = mux
		s.apply = append(s.apply, func(se *webrtc.SettingEngine) {
			se.SetICETCPMux(mux)
			se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6,
				webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6})
		})
	}
	return s, nil
}

// UDPAddr is the single UDP port's address, nil without one.
func (s *Sockets) UDPAddr() *net.UDPAddr {
	if s == nil || s.udp == nil {
		return nil
	}
	return s.udp.LocalAddr().(*net.UDPAddr)
}

// TCPAddr is the ICE-TCP listener's address, nil without one.
func (s *Sockets) TCPAddr() *net.TCPAddr {
	if s == nil || s.tcp == nil {
		return nil
	}
	return s.tcp.Addr().(*net.TCPAddr)
}

// Close closes the muxes and their sockets.
func (s *Sockets) Close() error {
	if s == nil {
		return nil
	}
	var errs []error
	// Each mux closes the socket it was given.
	if s.udpMux != nil {
		errs = append(errs, s.udpMux.Close())
	} else if s.udp != nil {
		errs = append(errs, s.udp.Close())
	}
	if s.tcpMux != nil {
		errs = append(errs, s.tcpMux.Close())
	} else if s.tcp != nil {
		errs = append(errs, s.tcp.Close())
	}
	return errors.Join(errs...)
}

// configureICE applies the network settings of cfg: the shared sockets or
// the ephemeral port range, the public address and loopback candidates.
func configureICE(se *webrtc.SettingEngine, cfg Config) error {
	if cfg.Sockets != nil && cfg.Sockets.udp != nil && (cfg.UDPPortMin != 0 || cfg.UDPPortMax != 0) {
		return errors.New("a single UDP port and a UDP port range exclude each other")
	}
	if cfg.UDPPortMin != 0 || cfg.UDPPortMax != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return fmt.Errorf("udp port range %d-%d: %w", cfg.UDPPortMin, cfg.UDPPortMax, err)
		}
	}
	if cfg.Sockets != nil {
		for _, apply := range cfg.Sockets.apply {
			apply(se)
		}
	}
	if cfg.PublicIP != "" {
		if net.ParseIP(cfg.PublicIP) == nil {
			return fmt.Errorf("public ip %q is not an IP address", cfg.PublicIP)
		}
		// Hosts behind 1:1 NAT (cloud VMs) announce the public address in
		// place of every private one: the private ones are unreachable.
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        []string{cfg.PublicIP},
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return fmt.Errorf("public ip: %w", err)
		}
	}
	se.SetIncludeLoopbackCandidate(cfg.Loopback)
	return nil
}

// quietWildcard drops the UDP mux's warning about listening on the
// wildcard address, which ListenSockets does on purpose.
type quietWildcard struct{ logging.LeveledLogger }

func (quietWildcard) Warn(string) {}
