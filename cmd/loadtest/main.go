// Command loadtest drives a Switchboard server with many participants and
// reports what they received: loss, added latency, jitter, time to first
// frame, bitrate and frame rate, and the server's CPU and memory.
//
//	loadtest synthetic -url http://HOST:PORT/ -rooms R -publishers P -subscribers S -bitrate 1.5M -duration D [-json FILE]
//	loadtest chrome    -url http://HOST:PORT/ -rooms R -tabs N -duration D [-json FILE]
//	loadtest soak      -url http://HOST:PORT/ -duration D -warmup W [-csv FILE]
//	loadtest ramp      -url http://HOST:PORT/ -publishers P -step N -step-duration D [-json FILE]
//
// Synthetic mode runs Pion clients (internal/client) in this process: P
// publishers per room send VP8 and Opus-sized audio with a send stamp in
// every packet, S subscribers per room receive everyone, answering with RTCP
// as a browser does, so one machine can drive hundreds of streams. Chrome
// mode opens N tabs of headless Chromium in K processes on the embedded web
// client with fake camera and microphone, and reads getStats() every second.
//
// Both print a live progress line on stderr and a summary table on stdout at
// the end or on Ctrl-C (a second Ctrl-C quits at once), and -json FILE
// writes the same figures. The exit status is 0 when the run met its
// targets, 1 when it did not (see the "failures" in the report) or could not
// run, and 2 for bad flags.
//
// Soak mode holds one call for a long time with churn (layer switches
// every second, viewers killed and replaced, publishers restarting, lost
// packets NACKed) and fails when the server's goroutines, heap, RSS or open
// descriptors trend upward, a viewer stops receiving, or the server does not
// go idle once the room is empty; see soak.go.
//
// Ramp mode keeps one room of P synthetic publishers and adds N subscribers
// at each step until loss or the p99 added latency passes its limit, and
// prints the knee: the last step within both; see ramp.go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  loadtest synthetic -url http://HOST:PORT/ -rooms R -publishers P -subscribers S -bitrate 1.5M -duration D [-json FILE] [flags]
  loadtest chrome    -url http://HOST:PORT/ -rooms R -tabs N -duration D [-json FILE] [flags]
  loadtest soak      -url http://HOST:PORT/ -duration D -warmup W [-csv FILE] [flags]
  loadtest ramp      -url http://HOST:PORT/ -publishers P -step N -step-duration D [-json FILE] [flags]
"loadtest MODE -h" lists the flags of a mode.
`

// run is the whole command; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var (
		c       *common
		runMode func() (*Report, error)
	)
	switch args[0] {
	case "synthetic":
		var cfg syntheticConfig
		if code, ok := parse(args, stderr, &cfg.common, cfg.flags); !ok {
			return code
		}
		c, runMode = &cfg.common, func() (*Report, error) { return runSynthetic(ctx, &cfg, stderr) }
	case "chrome":
		var cfg chromeConfig
		if code, ok := parse(args, stderr, &cfg.common, cfg.flags); !ok {
			return code
		}
		c, runMode = &cfg.common, func() (*Report, error) { return runChrome(ctx, &cfg, stderr) }
	case "soak": // its own summary and exit status: it judges trends, not a window
		return soakCommand(ctx, args[1:], stdout, stderr)
	case "ramp": // its own table and exit status: steps and a knee, not a window
		return rampCommand(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "loadtest: unknown mode %q\n%s", args[0], usage)
		return 2
	}
	stop, err := c.startProfile()
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 1
	}
	var rep *Report
	if err = c.awaitServer(ctx); err == nil {
		rep, err = runMode()
	}
	stop()
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		if rep == nil { // it could not run: the report says only why
			rep = &Report{Mode: args[0], URL: c.url, Start: time.Now(), Config: map[string]any{}}
		}
		rep.fail("%v", err)
	}
	rep.finish()
	rep.printTable(stdout)
	if c.jsonPath != "" {
		if err := rep.writeJSON(c.jsonPath); err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 1
		}
	}
	if !rep.OK {
		return 1
	}
	return 0
}

// common are the flags of both modes.
type common struct {
	url         string
	rooms       int
	duration    time.Duration
	jsonPath    string
	serverPID   int
	metricsURL  string
	roomPrefix  string
	joinTimeout time.Duration
	maxLoss     float64
	waitServer  time.Duration
	cpuProfile  string

	base *url.URL // url, parsed
}

func (c *common) register(fl *flag.FlagSet) {
	fl.StringVar(&c.url, "url", "http://127.0.0.1:8080/", "the server's base URL")
	fl.IntVar(&c.rooms, "rooms", 1, "number of rooms")
	fl.DurationVar(&c.duration, "duration", 30*time.Second, "measured time, after everyone joined")
	fl.StringVar(&c.jsonPath, "json", "", "also write the report as JSON to this `file`")
	fl.IntVar(&c.serverPID, "server-pid", 0, "read the server's CPU and memory from /proc/`PID` instead of /metrics")
	fl.StringVar(&c.metricsURL, "metrics", "", "the server's Prometheus metrics `URL` (default: URL/metrics); several, comma-separated, are summed (the nodes of a cluster)")
	fl.StringVar(&c.roomPrefix, "room-prefix", "load", "rooms are named PREFIX-0, PREFIX-1, ...")
	fl.DurationVar(&c.joinTimeout, "join-timeout", 30*time.Second, "how long joining and the first media may take")
	fl.Float64Var(&c.maxLoss, "max-loss", 1, "fail the run at this loss ratio or above (1: only when everything is lost)")
	fl.StringVar(&c.cpuProfile, "cpuprofile", "", "write this process's CPU profile to `file` (the load tool's own cost)")
	fl.DurationVar(&c.waitServer, "wait-server", 0, "wait this long for the server's /readyz to say it is ready before starting (scripts that just started it)")
}

func (c *common) check() error {
	u, err := url.Parse(c.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url %q: want http://HOST:PORT/", c.url)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	c.base = u
	if c.metricsURL == "" {
		c.metricsURL = u.JoinPath("metrics").String()
	}
	switch {
	case c.rooms < 1:
		return errors.New("-rooms must be at least 1")
	case c.duration <= 0:
		return errors.New("-duration must be positive")
	case c.maxLoss <= 0 || c.maxLoss > 1:
		return errors.New("-max-loss must be in (0, 1]")
	}
	return nil
}

// startProfile starts -cpuprofile; stop ends it.
func (c *common) startProfile() (stop func(), err error) {
	if c.cpuProfile == "" {
		return func() {}, nil
	}
	f, err := os.Create(c.cpuProfile)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// awaitServer polls /readyz (200 once the server takes participants) for up
// to -wait-server.
func (c *common) awaitServer(ctx context.Context) error {
	if c.waitServer <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.waitServer)
	defer cancel()
	health := c.base.JoinPath("readyz").String()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, health, nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer within -wait-server %v", health, c.waitServer)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// wsURL is the signaling URL under the base URL.
func (c *common) wsURL() string {
	u := *c.base
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	return u.JoinPath("ws").String()
}

// loopback reports whether the server is on this host's loopback, so that
// clients can keep their ICE candidates to loopback too.
func (c *common) loopback() bool {
	host := c.base.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *common) room(i int) string { return fmt.Sprintf("%s-%d", c.roomPrefix, i) }

// parse parses a mode's flags; ok=false returns code from run.
func parse(args []string, stderr io.Writer, c *common, modeFlags func(*flag.FlagSet)) (code int, ok bool) {
	fl := flag.NewFlagSet("loadtest "+args[0], flag.ContinueOnError)
	fl.SetOutput(stderr)
	c.register(fl)
	modeFlags(fl)
	if err := fl.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest: unexpected argument %q\n", fl.Arg(0))
		return 2, false
	}
	if err := c.check(); err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2, false
	}
	return 0, true
}

// bitrate is a flag value in bit/s that accepts k and M suffixes ("1.5M").
type bitrate int

func (b *bitrate) String() string { return strconv.Itoa(int(*b)) }

func (b *bitrate) Set(s string) error {
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1e3, s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1e6, s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v*mult < 10e3 || v*mult > 100e6 {
		return fmt.Errorf("want a bitrate from 10k to 100M, such as 500k or 1.5M")
	}
	*b = bitrate(v * mult)
	return nil
}
