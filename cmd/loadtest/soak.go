package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pion/logging"

	"github.com/switchboard-sfu/switchboard/internal/client"
	"github.com/switchboard-sfu/switchboard/signal"
)

// soakConfig are the flags of `loadtest soak`: one long call with churn,
// watched for leaks.
type soakConfig struct {
	common
	publishers, viewers int
	bitrate             bitrate
	fps                 int
	warmup              time.Duration
	loss                float64
	layerEvery          time.Duration
	killEvery           time.Duration
	restartEvery        time.Duration
	stall               time.Duration
	emptyTimeout        time.Duration
	settle, idleWindow  time.Duration
	maxIdleCPU          float64
	csvPath             string
	tokenSecret         string
}

func (c *soakConfig) register(fl *flag.FlagSet) {
	c.bitrate = 1_500_000
	c.rooms, c.maxLoss = 1, 1 // one room; loss is judged by frames, not counted
	fl.StringVar(&c.url, "url", "http://127.0.0.1:8080/", "the server's base URL")
	fl.StringVar(&c.metricsURL, "metrics", "", "the server's Prometheus metrics `URL` (default: URL/metrics); it must have the Go and process collectors")
	fl.DurationVar(&c.waitServer, "wait-server", 0, "wait this long for the server's /readyz to say it is ready before starting (scripts that just started it)")
	fl.StringVar(&c.roomPrefix, "room-prefix", "soak", "the room is named PREFIX-0")
	fl.DurationVar(&c.joinTimeout, "join-timeout", 30*time.Second, "how long one join (and a publisher's first media) may take")
	fl.DurationVar(&c.duration, "duration", 10*time.Minute, "how long the call runs, warm-up included")
	fl.DurationVar(&c.warmup, "warmup", time.Minute, "the first part of the call, not judged: caches fill, estimates and layers settle")
	fl.IntVar(&c.publishers, "publishers", 3, "publishers (simulcast video and audio)")
	fl.IntVar(&c.viewers, "viewers", 6, "viewers (receive everyone, publish nothing)")
	fl.Var(&c.bitrate, "bitrate", "each publisher's full layer, e.g. 500k or 1.5M (the others are a tenth and three tenths)")
	fl.IntVar(&c.fps, "fps", 30, "video frames per second")
	fl.Float64Var(&c.loss, "loss", 0.05, "share of the RTP arriving at each viewer that is dropped before its NACK generator sees it")
	fl.DurationVar(&c.layerEvery, "layer-interval", time.Second, "how often each viewer reports new random sizes for its videos (0: never)")
	fl.DurationVar(&c.killEvery, "kill-interval", 10*time.Second, "how often a random viewer is closed without leaving and replaced (0: never)")
	fl.DurationVar(&c.restartEvery, "restart-interval", 30*time.Second, "how often the next publisher leaves and joins again (0: never)")
	fl.DurationVar(&c.stall, "stall", 5*time.Second, "fail when a viewer decodes no frame for this long while it shows a video")
	fl.DurationVar(&c.emptyTimeout, "empty-timeout", time.Minute, "after everyone left, how long the server may keep participants (killed viewers stay for its resume grace)")
	fl.DurationVar(&c.settle, "settle", 10*time.Second, "once the room is empty, wait this long before checking that the server is idle")
	fl.DurationVar(&c.idleWindow, "idle-window", 5*time.Second, "measure the idle server's CPU over this long")
	fl.Float64Var(&c.maxIdleCPU, "max-idle-cpu", 2, "fail when the idle server uses more than this `percent` of a core")
	fl.StringVar(&c.csvPath, "csv", "bin/soak.csv", "write a sample a second to this `file`; the plot goes next to it with .svg")
	fl.StringVar(&c.tokenSecret, "token-secret", "",
		"the server's join token `secret`, to mint each client a token (default: $SWITCHBOARD_TOKEN_SECRET)")
}

func (c *soakConfig) check() error {
	switch {
	case c.publishers < 1 || c.viewers < 1:
		return errors.New("-publishers and -viewers must be at least 1")
	case c.fps < 1 || c.fps > 120:
		return errors.New("-fps must be 1-120")
	case c.loss < 0 || c.loss >= 1:
		return errors.New("-loss must be in [0, 1)")
	case c.warmup < 0 || c.warmup >= c.duration:
		return errors.New("-warmup must be shorter than -duration")
	case c.stall <= 0 || c.emptyTimeout <= 0 || c.settle < 0 || c.idleWindow < time.Second || c.csvPath == "":
		return errors.New("-stall, -empty-timeout, -settle, -idle-window (at least 1s) or -csv out of range")
	}
	return c.common.check()
}

// soakCommand is `loadtest soak`; it returns the exit status.
func soakCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, code := parseSoak(args, stderr)
	if cfg == nil {
		return code
	}
	res, err := runSoak(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 1
	}
	res.print(stdout)
	if len(res.failures) > 0 {
		return 1
	}
	return 0
}

// parseSoak reads the flags; a nil config returns code from the command.
func parseSoak(args []string, stderr io.Writer) (*soakConfig, int) {
	var cfg soakConfig
	fl := flag.NewFlagSet("loadtest soak", flag.ContinueOnError)
	fl.SetOutput(stderr)
	cfg.register(fl)
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0
		}
		return nil, 2
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest: unexpected argument %q\n", fl.Arg(0))
		return nil, 2
	}
	if err := cfg.check(); err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return nil, 2
	}
	if cfg.tokenSecret == "" {
		cfg.tokenSecret = os.Getenv("SWITCHBOARD_TOKEN_SECRET")
	}
	return &cfg, 0
}

// runSoak runs the call, then empties the room and watches the server go
// idle; the error says why it could not run at all.
func runSoak(ctx context.Context, cfg *soakConfig, stderr io.Writer) (*soakResult, error) {
	if err := cfg.awaitServer(ctx); err != nil {
		return nil, err
	}
	sampler := &metricsSampler{probe: newServerProbe(cfg.metricsURL, 0)}
	before, err := sampler.sample(ctx, time.Now())
	if err != nil {
		return nil, fmt.Errorf("reading the server's metrics: %w", err)
	}
	if math.IsNaN(before.Goroutines) || math.IsNaN(before.HeapBytes) || math.IsNaN(before.RSSBytes) {
		return nil, fmt.Errorf("%s has no go_goroutines, go_memstats_heap_alloc_bytes or process_resident_memory_bytes", cfg.metricsURL)
	}
	room := &soakRoom{cfg: cfg, pubs: make([]*client.Client, cfg.publishers), viewers: make([]*viewerSlot, cfg.viewers)}
	if room.pubAPI, err = client.NewAPI(soakAPIOptions(cfg)...); err != nil {
		return nil, err
	}
	if room.viewAPI, err = lossyAPI(cfg.loss, cfg.loopback()); err != nil {
		return nil, err
	}
	if cfg.tokenSecret != "" {
		if room.auth, err = signal.NewAuth([]byte(cfg.tokenSecret)); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(cfg.csvPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(cfg.csvPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out, err := newCSVSamples(f, cfg.viewers)
	if err != nil {
		return nil, err
	}
	res := &soakResult{cfg: cfg, before: before, csvPath: cfg.csvPath,
		svgPath: strings.TrimSuffix(cfg.csvPath, filepath.Ext(cfg.csvPath)) + ".svg"}

	prog := newProgress(stderr)
	defer prog.done()
	prog.update(fmt.Sprintf("joining %d publishers and %d viewers", cfg.publishers, cfg.viewers))
	if err := joinRoom(ctx, room); err != nil {
		room.leave()
		return nil, err
	}

	// The call: sample every second while the churn runs beside.
	start := time.Now()
	churnCtx, stopChurn := context.WithCancel(ctx)
	churned := make(chan struct{})
	go func() { room.churn(churnCtx); close(churned) }()
	failedInARow := 0
	sample := func(phase string, fps []float64) soakSample {
		now := time.Now()
		s, err := sampler.sample(ctx, now)
		failedInARow++
		switch {
		case err == nil:
			failedInARow = 0
		case ctx.Err() == nil:
			res.scrapeErrors++
			if failedInARow == 5 { // it died or hangs: nothing more to learn
				res.serverGone = true
				res.fail("the server's /metrics stopped answering: %v", err)
			}
		}
		s.T, s.Phase, s.ViewerFPS = now.Sub(start).Seconds(), phase, fps
		if err := out.add(s); err != nil && res.csvErr == nil {
			res.csvErr = err
		}
		res.samples = append(res.samples, s)
		return s
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for range int(cfg.duration / time.Second) {
		var now time.Time
		select {
		case <-ctx.Done():
		case now = <-tick.C:
		}
		if ctx.Err() != nil || res.serverGone {
			break
		}
		phase := phaseSoak
		if now.Sub(start) < cfg.warmup {
			phase = phaseWarmup
		}
		s := sample(phase, room.checkViewers(now))
		prog.update(fmt.Sprintf("%s %3.0fs of %v: %.0f goroutines, heap %.0f MiB, RSS %.0f MiB, %.0f fds, CPU %.0f%%, %.0f packets/s, %.0f NACKs/s",
			phase, s.T, cfg.duration, s.Goroutines, s.HeapBytes/(1<<20), s.RSSBytes/(1<<20), s.OpenFDs, s.CPUPercent, s.PacketsPerS, s.NACKsPerS))
	}
	stopChurn()
	<-churned
	res.interrupted = ctx.Err() != nil

	// Everyone leaves; the server should let go of all of it and go idle.
	res.leftAt = time.Since(start).Seconds()
	prog.update("everyone leaves")
	var failures []string
	res.replaced, res.restarts, failures = room.leave()
	res.failures = append(failures, res.failures...)
	empty := make([]float64, cfg.viewers)
	for i := range empty {
		empty[i] = math.NaN()
	}
	// A killed viewer stays in the room for the server's resume grace (20 s
	// by default), waiting for its client to come back.
	for deadline := time.Now().Add(cfg.emptyTimeout); ctx.Err() == nil && !res.serverGone; {
		sleep(ctx, time.Second)
		s := sample(phaseEmpty, empty)
		prog.update(fmt.Sprintf("everyone left %3.0fs ago: %.0f participants still in the room", s.T-res.leftAt, s.Participants))
		if !(s.Participants > 0) {
			break
		}
		if time.Now().After(deadline) {
			res.fail("the server still had %.0f participants %v after everyone left", s.Participants, cfg.emptyTimeout)
			break
		}
	}
	res.emptyAt = time.Since(start).Seconds()
	for wait := time.Since(start) + cfg.settle + cfg.idleWindow; time.Since(start) < wait && ctx.Err() == nil && !res.serverGone; {
		sleep(ctx, time.Second)
		s := sample(phaseEmpty, empty)
		prog.update(fmt.Sprintf("room empty %3.0fs: %.0f goroutines, CPU %.1f%%", s.T-res.emptyAt, s.Goroutines, s.CPUPercent))
	}
	prog.done()
	res.judge()
	if err := res.writePlot(); err != nil {
		res.failures = append(res.failures, fmt.Sprintf("writing %s: %v", res.svgPath, err))
	}
	if res.csvErr != nil {
		res.failures = append(res.failures, fmt.Sprintf("writing %s: %v", res.csvPath, res.csvErr))
	}
	return res, nil
}

// soakAPIOptions are the publishers' API options, as in synthetic mode.
func soakAPIOptions(cfg *soakConfig) []client.APIOption {
	// Pion's warnings (connections closing as clients churn) would break
	// up the progress line; the failures say what went wrong.
	opts := []client.APIOption{client.PionLogs(&logging.DefaultLoggerFactory{Writer: io.Discard})}
	if cfg.loopback() {
		opts = append(opts, client.LoopbackOnly())
	}
	return opts
}

// joinRoom joins the publishers (until their media flows) and then the
// viewers, each group at once.
func joinRoom(ctx context.Context, room *soakRoom) error {
	var (
		mu    sync.Mutex
		first error
	)
	each := func(n int, add func(context.Context, int) error) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if err := add(ctx, i); err != nil {
					mu.Lock()
					first = firstErr(first, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	each(room.cfg.publishers, room.addPublisher)
	if first == nil {
		each(room.cfg.viewers, room.addViewer)
	}
	if first != nil {
		return fmt.Errorf("joining: %w", first)
	}
	return nil
}

// firstErr keeps the first error.
func firstErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
