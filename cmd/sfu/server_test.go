package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/internal/browsertest"
	"github.com/switchboard-sfu/switchboard/internal/netlab"
	"github.com/switchboard-sfu/switchboard/internal/poll"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the sfu command, for tests of the process
	// itself: flags, exit codes, signals (process_test.go).
	if os.Getenv(runAsSFU) == "1" {
		os.Exit(sfuMain(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { removeBuiltSFU() }))
}

// startServer runs the whole server in-process on a loopback port, with the
// default configuration and loopback candidates, and returns its base URL
// ("http://127.0.0.1:PORT").
func startServer(t *testing.T) (*server, string) {
	t.Helper()
	return startServerWith(t, nil)
}

// startServerAt is startServer on a given address (e.g. all interfaces, for
// clients in other network namespaces).
func startServerAt(t *testing.T, addr string) (*server, string) {
	t.Helper()
	return startServerWith(t, func(c *Config) { c.Listen = addr })
}

// startServerWith is startServer with changes to the configuration.
func startServerWith(t *testing.T, configure func(*Config)) (*server, string) {
	t.Helper()
	c := defaults()
	c.Listen = "127.0.0.1:0"
	c.ICE.Loopback = true
	if configure != nil {
		configure(&c)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	s, err := newServer(c, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", c.Listen)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	// Ready as /readyz says it, once the embedded NATS is up (milliseconds).
	select {
	case <-s.node.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the cluster registry was not set up within 10 s")
	}
	scheme := "http://"
	if s.tls != nil {
		scheme = "https://"
	}
	return s, scheme + l.Addr().String()
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/ws" }

// waitUntil polls cond until it holds or the deadline passes.
var waitUntil = poll.Until

// testLogger keeps the server's log in memory and prints it if the test
// failed. (zaptest's logger panics when Pion logs from a goroutine that
// outlives the test by a moment.)
func testLogger(t *testing.T) *zap.Logger {
	w := &lockedBuffer{}
	enc := zap.NewDevelopmentEncoderConfig()
	core := quietPion{zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), zap.DebugLevel)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", w.String())
		}
	})
	return zap.New(core)
}

// quietPion leaves out Pion's debug and info lines (SCTP, ICE and DTLS
// chatter), which would otherwise push the server's own lines out of what
// a CI report keeps of a failed test's log.
type quietPion struct{ zapcore.Core }

func (c quietPion) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if strings.HasPrefix(e.LoggerName, "pion") && e.Level < zapcore.WarnLevel {
		return ce
	}
	return c.Core.Check(e, ce)
}

func (c quietPion) With(f []zapcore.Field) zapcore.Core { return quietPion{c.Core.With(f)} }

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// launchBehind starts Chromium inside link's namespace, so that it reaches
// the server at origin ("http://" + link.HostIP + ":port") only over the
// link. The origin counts as secure, as the camera needs; it is plain HTTP.
func launchBehind(t *testing.T, link *netlab.Link, origin string, opts ...browsertest.Option) *browsertest.Browser {
	t.Helper()
	bin, ok := browsertest.Binary()
	if !ok {
		browsertest.Launch(t) // skips or fails with the usual message
	}
	return browsertest.Launch(t, append([]browsertest.Option{browsertest.WithBinary(link.Script(bin)),
		browsertest.WithExtraFlags("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE "+link.HostIP,
			"--unsafely-treat-insecure-origin-as-secure="+origin)}, opts...)...)
}
