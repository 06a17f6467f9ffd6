// Command sfu is the Switchboard server: the embedded web client at /, the
// signaling WebSocket at /ws, and media over UDP.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/switchboard-sfu/switchboard/rtc"
	"github.com/switchboard-sfu/switchboard/sfu"
	sig "github.com/switchboard-sfu/switchboard/signal"
	"github.com/switchboard-sfu/switchboard/web"
)

// config is everything the flags set.
type config struct {
	Listen   string
	UDPPorts string
	PublicIP string
	Loopback bool
	LogLevel string
	Pprof    bool
}

func parseFlags(args []string) (config, rtc.Config, error) {
	var c config
	fl := flag.NewFlagSet("sfu", flag.ContinueOnError)
	fl.StringVar(&c.Listen, "listen", ":8080", "HTTP address for the web client and /ws")
	fl.StringVar(&c.UDPPorts, "udp-ports", "", "UDP port range MIN-MAX for media (default: any port)")
	fl.StringVar(&c.PublicIP, "public-ip", "", "IP address to announce in ICE candidates (host behind 1:1 NAT)")
	fl.BoolVar(&c.Loopback, "loopback", false, "also offer loopback ICE candidates (tests on one machine)")
	fl.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.BoolVar(&c.Pprof, "pprof", false, "serve Go profiles at /debug/pprof/")
	if err := fl.Parse(args); err != nil {
		return c, rtc.Config{}, err
	}
	if fl.NArg() > 0 {
		return c, rtc.Config{}, fmt.Errorf("unexpected argument %q", fl.Arg(0))
	}
	rc := rtc.Config{PublicIP: c.PublicIP, Loopback: c.Loopback}
	if c.UDPPorts != "" {
		lo, hi, ok := strings.Cut(c.UDPPorts, "-")
		min, err1 := strconv.ParseUint(lo, 10, 16)
		max, err2 := strconv.ParseUint(hi, 10, 16)
		if !ok || err1 != nil || err2 != nil || min == 0 || min > max {
			return c, rc, fmt.Errorf("-udp-ports %q: want MIN-MAX, e.g. 50000-60000", c.UDPPorts)
		}
		rc.UDPPortMin, rc.UDPPortMax = uint16(min), uint16(max)
	}
	if c.PublicIP != "" && net.ParseIP(c.PublicIP) == nil {
		return c, rc, fmt.Errorf("-public-ip %q is not an IP address", c.PublicIP)
	}
	return c, rc, nil
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.DisableStacktrace = true
	return cfg.Build()
}

// server is the wired-up SFU: tests start it in-process.
type server struct {
	log    *zap.Logger
	rooms  *sfu.Rooms
	signal *sig.Handler
	http   *http.Server
}

func newServer(c config, rc rtc.Config, log *zap.Logger) (*server, error) {
	api, err := rtc.NewAPI(rc, log)
	if err != nil {
		return nil, err
	}
	rooms := sfu.NewRooms(api, log)
	s := &server{log: log, rooms: rooms, signal: sig.NewHandler(rooms, log.Named("signal"))}
	static, err := fs.Sub(web.FS, ".")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ws", s.signal)
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	reg := prometheus.NewRegistry()
	reg.MustRegister(rooms, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if c.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// serve answers HTTP on l until shutdown.
func (s *server) serve(l net.Listener) error {
	if err := s.http.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// shutdown stops accepting, tells every client, and closes all connections.
func (s *server) shutdown(ctx context.Context) {
	_ = s.http.Shutdown(ctx) // hijacked WebSockets are not waited for here
	s.signal.Close()
	s.rooms.Close()
}

func main() {
	c, rc, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sfu:", err)
		os.Exit(2)
	}
	log, err := newLogger(c.LogLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sfu:", err)
		os.Exit(2)
	}
	defer func() { _ = log.Sync() }()
	if err := run(c, rc, log); err != nil {
		log.Error("exit", zap.Error(err))
		os.Exit(1)
	}
}

func run(c config, rc rtc.Config, log *zap.Logger) error {
	s, err := newServer(c, rc, log)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return err
	}
	log.Info("listening", zap.String("url", "http://"+displayAddr(l.Addr())+"/"),
		zap.String("udp-ports", c.UDPPorts), zap.String("public-ip", c.PublicIP), zap.Bool("loopback", c.Loopback))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- s.serve(l) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Info("shutting down")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.shutdown(sctx)
	return err
}

func displayAddr(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
