// Command sfu is the Switchboard server: the embedded web client at /, the
// signaling WebSocket at /ws, media over UDP (or TCP, or the embedded TURN
// relay). `sfu token` mints join tokens.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// started is when the process began, for the start-up time in the "ready" log.
var started = time.Now()

func main() {
	os.Exit(sfuMain(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// sfuMain runs the command and returns its exit code: 0 after a clean
// shutdown, 1 on a runtime error, 2 on a bad flag or configuration.
func sfuMain(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "token" {
		return tokenMain(args[1:], getenv, stdout, stderr)
	}
	c, printIt, err := loadConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "sfu:", err)
		return 2
	}
	if printIt {
		b, err := c.printable()
		if err != nil {
			fmt.Fprintln(stderr, "sfu:", err)
			return 1
		}
		_, _ = stdout.Write(b)
		return 0
	}
	log, err := newLogger(c, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "sfu:", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	if err := run(c, log); err != nil {
		log.Error("exit", zap.Error(err))
		return 1
	}
	return 0
}

// newLogger logs JSON in production, for log collectors, and readable
// lines in development.
func newLogger(c Config, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.Log.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	var enc zapcore.Encoder
	if c.logFormat() == "json" {
		ec := zap.NewProductionEncoderConfig()
		ec.TimeKey, ec.EncodeTime = "time", zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	} else {
		enc = zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)), nil
}

func run(c Config, log *zap.Logger) error {
	s, err := newServer(c, log)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", c.Listen)
	if err != nil {
		s.shutdown(context.Background())
		return err
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	errc := make(chan error, 1)
	go func() { errc <- s.serve(l) }()
	s.announce(l.Addr())

	// SIGTERM (systemd, Docker, Kubernetes) drains; Ctrl-C stops at once,
	// as does a second signal during a drain.
	select {
	case err = <-errc:
	case sig := <-sigs:
		if sig == syscall.SIGTERM {
			log.Info("draining: no new joins; clients told", zap.Duration("grace", c.Shutdown.Grace),
				zap.Int("participants", s.signal.Participants()))
			ctx, cancel := context.WithTimeout(context.Background(), c.Shutdown.Grace)
			go func() {
				select {
				case <-sigs:
					log.Info("second signal: stopping now")
					cancel()
				case <-ctx.Done():
				}
			}()
			s.drain(ctx, c.Shutdown.Grace)
			cancel()
		}
		log.Info("shutting down")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.shutdown(sctx)
	log.Info("stopped")
	return err
}
