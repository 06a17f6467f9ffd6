package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/api"
	"github.com/switchboard-sfu/switchboard/cluster"
	"github.com/switchboard-sfu/switchboard/relay"
	"github.com/switchboard-sfu/switchboard/rtc"
	"github.com/switchboard-sfu/switchboard/sfu"
	sig "github.com/switchboard-sfu/switchboard/signal"
	"github.com/switchboard-sfu/switchboard/web"
	"github.com/switchboard-sfu/switchboard/webhook"
)

// server is the wired-up SFU: tests start it in-process.
type server struct {
	cfg      Config
	log      *zap.Logger
	sockets  *rtc.Sockets // nil in port-range mode
	sendPath prometheus.Collector
	relay    *relay.Server
	rooms    *sfu.Rooms
	signal   *sig.Handler
	http     *http.Server
	tls      *tls.Config     // nil without tls.cert
	hooks    *webhook.Sender // nil without webhooks.urls
	node     *cluster.Node

	ready    atomic.Bool
	draining atomic.Bool
}

// newServer opens the media sockets and the TURN relay and wires up the
// HTTP handlers; serve then answers HTTP.
func newServer(c Config, log *zap.Logger) (_ *server, err error) {
	s := &server{cfg: c, log: log}
	defer func() {
		if err != nil {
			s.shutdown(context.Background())
		}
	}()
	if c.TLS.Cert != "" {
		certs, err := newCertFiles(c.TLS.Cert, c.TLS.Key, log)
		if err != nil {
			return nil, err
		}
		s.tls = &tls.Config{GetCertificate: certs.get, MinVersion: tls.VersionTLS12}
	}

	lo, hi, _ := c.portRange() // validated
	rc := rtc.Config{UDPPortMin: lo, UDPPortMax: hi, PublicIP: c.ICE.PublicIP, Loopback: c.ICE.Loopback}
	if c.ICE.UDPPort != 0 || c.ICE.TCPPort != 0 {
		if s.sockets, err = rtc.ListenSockets(hostPort("", c.ICE.UDPPort), hostPort("", c.ICE.TCPPort), log); err != nil {
			return nil, err
		}
		rc.Sockets = s.sockets
	}
	rtcAPI, err := rtc.NewAPI(rc, log)
	if err != nil {
		return nil, err
	}
	s.rooms = sfu.NewRooms(rtcAPI, log)
	s.sendPath = rtcAPI.SendPathCollector()
	perSecond := c.Data.MessagesPerSecond
	if perSecond == 0 {
		perSecond = -1 // no limit
	}
	if len(c.Webhooks.URLs) > 0 {
		secret, _ := c.webhookSecret() // validated
		s.hooks = webhook.New(webhook.Config{URLs: c.Webhooks.URLs, Secret: secret}, log.Named("webhook"))
	}
	if s.node, err = cluster.Start(cluster.Config{NATS: c.Cluster.NATS, NodeID: c.Cluster.NodeID, URL: c.Cluster.AdvertiseURL,
		Credentials: c.Cluster.Credentials, CAFile: c.Cluster.CA, CertFile: c.Cluster.Cert, KeyFile: c.Cluster.Key,
		Replicas: c.Cluster.Replicas, RelayPort: c.Cluster.RelayPort, RelayAddress: c.Cluster.RelayAddress,
		MaxParticipantsPerNodeRoom: c.Cluster.MaxPerNode, MaxRooms: c.Limits.Rooms}, s.rooms, log.Named("cluster")); err != nil {
		return nil, err
	}
	s.rooms.SetObserver(func(e sfu.Event) {
		if s.hooks != nil {
			s.hooks.Observe(e)
		}
		s.node.Observe(e)
	})
	fileSize := int64(c.Data.FileSize)
	if fileSize == 0 {
		fileSize = -1 // no files
	}
	s.rooms.SetDataLimits(sfu.DataLimits{MessageSize: c.Data.MessageSize, MessagesPerSecond: perSecond, FileSize: fileSize})

	h := sig.NewHandler(s.rooms, log.Named("signal"))
	h.OriginPatterns = c.HTTP.AllowedOrigins
	h.ResumeGrace = c.Session.ResumeGrace
	h.Placement = placement{s.node}
	h.NodeID = s.node.ID()
	h.Limits = sig.Limits{
		Rooms:                c.Limits.Rooms,
		ParticipantsPerRoom:  c.Limits.ParticipantsPerRoom,
		ConnectionsPerMinute: c.Limits.ConnectionsPerMinute,
		MessagesPerSecond:    c.Limits.MessagesPerSecond,
		MessageSize:          c.Limits.MessageSize,
	}
	proxies, _ := parseNets(c.HTTP.TrustedProxies) // validated
	h.ClientIP = clientIP(proxies)
	if secret, _ := c.secret(); secret != nil { // validated
		if h.Auth, err = sig.NewAuth(secret); err != nil {
			return nil, err
		}
	}
	s.signal = h

	if c.TURN.Enabled {
		rcfg := relay.Config{
			Host:      c.turnHost(),
			UDPAddr:   hostPort("", c.TURN.UDPPort),
			TCPAddr:   hostPort("", c.TURN.TCPPort),
			TTL:       c.TURN.CredentialTTL,
			MediaPort: s.sockets.UDPAddr().Port,
			Local:     localIPs(c.ICE.PublicIP),
		}
		if s.tls != nil {
			rcfg.TLSAddr, rcfg.TLS = hostPort("", c.TURN.TLSPort), s.tls
		}
		if s.relay, err = relay.Start(rcfg, log.Named("turn")); err != nil {
			return nil, err
		}
		h.ICEServers = func(participant string) []sig.ICEServer {
			cr := s.relay.Credentials(participant)
			return []sig.ICEServer{{URLs: cr.URLs, Username: cr.Username, Credential: cr.Credential}}
		}
	}

	static, err := fs.Sub(web.FS, ".")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ws", s.signal)
	mux.Handle("GET /", http.FileServerFS(static))
	apiKey, _ := c.apiKey() // validated
	apiHandler := api.New(s.rooms, h.Auth, apiKey, log.Named("api"))
	for _, method := range []string{"GET", "POST", "DELETE", "PUT", "PATCH"} { // beside "GET /"
		mux.Handle(method+" "+api.Prefix, apiHandler)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	reg := prometheus.NewRegistry()
	if s.hooks != nil {
		reg.MustRegister(s.hooks)
	}
	reg.MustRegister(s.rooms, s.signal, s.node, s.sendPath, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if c.HTTP.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, TLSConfig: s.tls,
		ErrorLog: zap.NewStdLog(log.Named("http"))}
	return s, nil
}

// readyz is 200 while the server takes new participants, 503 before it
// serves and while it drains, so that a load balancer sends newcomers
// elsewhere.
func (s *server) readyz(w http.ResponseWriter, _ *http.Request) {
	switch {
	case s.draining.Load():
		http.Error(w, "draining", http.StatusServiceUnavailable)
	case !s.ready.Load() || !s.registered():
		http.Error(w, "starting", http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "ready")
	}
}

// registered says whether the cluster registry is set up (with an external
// NATS, it may never be while NATS is away: the node then serves alone, and
// says so only in its logs and metrics, not by refusing to be ready).
func (s *server) registered() bool {
	select {
	case <-s.node.Ready():
		return true
	default:
		return len(s.cfg.Cluster.NATS) > 0
	}
}

// serve answers HTTP (HTTPS with tls.cert) on l until shutdown.
func (s *server) serve(l net.Listener) error {
	if s.tls != nil {
		l = tls.NewListener(l, s.tls)
	}
	s.ready.Store(true)
	if err := s.http.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// announce logs where the server is and how it is set up.
func (s *server) announce(addr net.Addr) {
	c, log := s.cfg, s.log
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	fields := []zap.Field{zap.String("url", scheme+"://"+displayAddr(addr)+"/"), zap.String("mode", c.Mode),
		zap.Bool("tokens", s.signal.Auth != nil), zap.String("public-ip", c.ICE.PublicIP), zap.Bool("loopback", c.ICE.Loopback)}
	if a := s.sockets.UDPAddr(); a != nil {
		fields = append(fields, zap.Int("udp-port", a.Port))
	} else {
		fields = append(fields, zap.String("udp-ports", c.ICE.UDPPorts))
	}
	if a := s.sockets.TCPAddr(); a != nil {
		fields = append(fields, zap.Int("tcp-port", a.Port))
	}
	if s.relay != nil {
		fields = append(fields, zap.Strings("turn", s.relay.URLs()))
	}
	log.Info("listening", fields...)
	if s.signal.Auth == nil {
		log.Warn("OPEN ACCESS: no join token is needed, anyone who reaches this server can join any room and publish. " +
			"Fine on localhost; on a public host set mode: production and auth.secret (README.md, Deployment).")
	}
	log.Info("ready", zap.Duration("startup", time.Since(started)))
}

// drain refuses new joins, tells every client, and returns when they have
// all left or ctx ends.
func (s *server) drain(ctx context.Context, grace time.Duration) {
	s.draining.Store(true)
	s.node.Drain()
	s.signal.Drain(ctx, grace)
}

// shutdown stops accepting, tells every client, and closes all connections.
func (s *server) shutdown(ctx context.Context) {
	s.draining.Store(true)
	if s.http != nil {
		_ = s.http.Shutdown(ctx) // hijacked WebSockets are not waited for here
	}
	if s.node != nil {
		s.node.Close() // first, so that no one is sent here any more
	}
	if s.signal != nil {
		s.signal.Close()
	}
	if s.rooms != nil {
		s.rooms.Close()
	}
	if s.hooks != nil {
		s.hooks.Close() // after the rooms: their last events are queued, not sent
	}
	if s.relay != nil {
		_ = s.relay.Close()
	}
	if s.sockets != nil {
		_ = s.sockets.Close()
	}
}

// hostPort is ":port", or "" for port 0 (off).
func hostPort(host string, port int) string {
	if port == 0 {
		return ""
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func displayAddr(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// placement is the cluster node as signaling sees it.
type placement struct{ n *cluster.Node }

func (p placement) Place(ctx context.Context, room, avoid, ticket string) *sig.Redirect {
	return redirect(p.n.Place(ctx, room, avoid, ticket))
}

func (p placement) MoveTo() *sig.Redirect { return redirect(p.n.MoveTo()) }

func (p placement) Origins() []string { return p.n.Origins() }

func redirect(r *cluster.Redirect) *sig.Redirect {
	if r == nil {
		return nil
	}
	return &sig.Redirect{URL: r.URL, Node: r.Node, Ticket: r.Ticket}
}
