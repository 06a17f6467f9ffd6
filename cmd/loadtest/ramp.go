package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pion/logging"

	"github.com/switchboard-sfu/switchboard/internal/client"
)

// rampConfig are the flags of `loadtest ramp`: one room of publishers,
// subscribers added step by step until the server stops keeping up. The
// synthetic config carries the client settings both modes share.
type rampConfig struct {
	syntheticConfig
	step           int
	stepDuration   time.Duration
	settle         time.Duration
	confirm        bool
	maxSubscribers int
	limits         rampLimits
}

func (c *rampConfig) register(fl *flag.FlagSet) {
	c.bitrate = 1_500_000
	c.rooms, c.maxLoss = 1, 1
	fl.StringVar(&c.url, "url", "http://127.0.0.1:8080/", "the server's base URL")
	fl.StringVar(&c.metricsURL, "metrics", "", "the server's Prometheus metrics `URL` (default: URL/metrics)")
	fl.IntVar(&c.serverPID, "server-pid", 0, "read the server's CPU from /proc/`PID` instead of /metrics (packet counters still come from /metrics)")
	fl.DurationVar(&c.waitServer, "wait-server", 0, "wait this long for the server's /readyz to say it is ready before starting (scripts that just started it)")
	fl.StringVar(&c.roomPrefix, "room-prefix", "ramp", "the room is named PREFIX-0")
	fl.DurationVar(&c.joinTimeout, "join-timeout", 30*time.Second, "how long joining and the first media of a step may take")
	fl.StringVar(&c.jsonPath, "json", "", "also write the steps and the knee as JSON to this `file`, and a plot next to it with .svg")
	fl.IntVar(&c.publishers, "publishers", 4, "publishers in the room (each sends video and audio)")
	c.clientFlags(fl)
	fl.IntVar(&c.step, "step", 4, "subscribers added at each step (the first step starts with this many)")
	fl.DurationVar(&c.stepDuration, "step-duration", 12*time.Second, "how long each step lasts once its subscribers' media flows, -settle included")
	fl.DurationVar(&c.settle, "settle", 5*time.Second, "the unmeasured start of each step (the new subscribers' bandwidth estimates and layers settle)")
	fl.DurationVar(&c.warmup, "warmup", 10*time.Second, "unmeasured time before the first step's -settle, as the room starts (the publishers' estimates and layers settle)")
	fl.BoolVar(&c.confirm, "confirm", true, "measure a step over the loss or latency limit once more before stopping, and keep the second figures (a shared machine's hiccup is not a knee)")
	fl.IntVar(&c.maxSubscribers, "max-subscribers", 200, "stop after the step that reaches this many subscribers")
	fl.Float64Var(&c.limits.MaxLoss, "max-loss", 0.005, "stop once a step's loss ratio is above this")
	fl.DurationVar(&c.limits.MaxP99, "max-p99", 20*time.Millisecond, "stop once a step's p99 added latency is above this")
}

func (c *rampConfig) check() error {
	switch {
	case c.publishers < 1 || c.step < 1 || c.maxSubscribers < c.step:
		return errors.New("-publishers and -step must be at least 1, and -max-subscribers at least -step")
	case c.fps < 1 || c.fps > 120 || c.concurrency < 1:
		return errors.New("-fps or -join-concurrency out of range")
	case c.drop < 0 || c.drop > 1:
		return errors.New("-drop must be in [0, 1]")
	case c.settle < 0 || c.warmup < 0 || c.stepDuration-c.settle < time.Second:
		return errors.New("-step-duration must be at least 1s longer than -settle, and -warmup not negative")
	case c.limits.MaxLoss < 0 || c.limits.MaxLoss >= 1 || c.limits.MaxP99 <= 0:
		return errors.New("-max-loss must be in [0, 1) and -max-p99 positive")
	}
	c.duration = c.stepDuration - c.settle // for common.check; each step's window
	return c.common.check()
}

// rampCommand is `loadtest ramp`; it returns the exit status.
func rampCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg rampConfig
	fl := flag.NewFlagSet("loadtest ramp", flag.ContinueOnError)
	fl.SetOutput(stderr)
	cfg.register(fl)
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest: unexpected argument %q\n", fl.Arg(0))
		return 2
	}
	if err := cfg.check(); err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	if cfg.tokenSecret == "" {
		cfg.tokenSecret = os.Getenv("SWITCHBOARD_TOKEN_SECRET")
	}
	res := newRampResult(&cfg)
	err := cfg.awaitServer(ctx)
	if err == nil {
		err = runRamp(ctx, &cfg, res, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		res.fail("%v", err)
	}
	res.finish()
	res.print(stdout)
	if cfg.jsonPath != "" {
		if err := res.write(cfg.jsonPath); err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 1
		}
	}
	if !res.OK {
		return 1
	}
	return 0
}

// runRamp joins the publishers, then adds subscribers a step at a time,
// measuring each step into res, until a step breaks a limit, the ramp
// reaches -max-subscribers, or ctx ends. The error says why it could not go
// on; the steps measured before it stay in res.
func runRamp(ctx context.Context, cfg *rampConfig, res *rampResult, stderr io.Writer) error {
	// Pion's warnings would break up the progress line; the steps say
	// what went wrong.
	apiOpts := []client.APIOption{client.PionLogs(&logging.DefaultLoggerFactory{Writer: io.Discard})}
	if cfg.loopback() {
		apiOpts = append(apiOpts, client.LoopbackOnly())
	}
	api, err := client.NewAPI(apiOpts...)
	if err != nil {
		return err
	}
	var pubs, subs []*member
	for range cfg.publishers {
		pubs = append(pubs, &member{publisher: true})
	}
	defer func() { closeAll(append(pubs, subs...)) }()
	prog := newProgress(stderr)
	defer prog.done()

	opts := client.Options{VideoBitrate: int(cfg.bitrate), FPS: cfg.fps, KeyframeInterval: cfg.keyframeInterval,
		Simulcast: cfg.simulcast, Drop: cfg.drop}
	pubOpts := opts
	pubOpts.Publish = true
	prog.update(fmt.Sprintf("joining %d publishers", cfg.publishers))
	joinAll(ctx, api, &cfg.syntheticConfig, pubs, pubOpts, func() {})
	for _, m := range pubs {
		if m.err != nil {
			return fmt.Errorf("a publisher failed to join: %w", m.err)
		}
	}
	if err := awaitMedia(ctx, cfg, pubs, prog); err != nil && cfg.publishers > 1 {
		return fmt.Errorf("the publishers do not receive each other: %w", err)
	}

	probe := newServerProbe(cfg.metricsURL, cfg.serverPID)
	var last *rampStep
	for n := nextStep(nil, 0, cfg.step, cfg.maxSubscribers); n > 0; n = nextStep(last, len(subs), cfg.step, cfg.maxSubscribers) {
		for _, m := range pubs {
			select {
			case <-m.c.Gone():
				return errors.New("the server closed a publisher's connection, or went away")
			default:
			}
		}
		batch := make([]*member, n)
		for i := range batch {
			batch[i] = &member{name: fmt.Sprintf("sub%d", len(subs)+i)}
		}
		prog.update(fmt.Sprintf("step %d: joining %d subscribers (%d in all)", len(res.Steps)+1, n, len(subs)+n))
		joinAll(ctx, api, &cfg.syntheticConfig, batch, opts, func() {})
		subs = append(subs, batch...)
		all := append(append([]*member(nil), pubs...), subs...)
		_ = awaitMedia(ctx, cfg, all, prog) // a stream still missing is judged below
		settle := cfg.settle
		if len(res.Steps) == 0 {
			settle += cfg.warmup
		}
		if settle > 0 {
			newWindow(all, probe).run(ctx, settle, func(line string) {
				prog.update(fmt.Sprintf("step %d settling %s", len(res.Steps)+1, line))
			})
		}
		s := measureStep(ctx, cfg, probe, pubs, subs, len(res.Steps)+1, prog)
		if !s.within() && s.FailedJoins == 0 && s.MissingStreams == 0 && cfg.confirm && ctx.Err() == nil {
			prog.done()
			fmt.Fprintln(stderr, stepLine(len(res.Steps)+1, &s)+"; measuring it again")
			first := s.Over
			s = measureStep(ctx, cfg, probe, pubs, subs, len(res.Steps)+1, prog)
			s.FirstOver = first
		}
		if ctx.Err() != nil { // a step cut short is not a measurement
			res.Interrupted = true
			return nil
		}
		res.Steps = append(res.Steps, s)
		last = &res.Steps[len(res.Steps)-1]
		prog.done()
		fmt.Fprintln(stderr, stepLine(len(res.Steps), last))
	}
	return nil
}

// awaitMedia waits until every member's streams delivered a packet, or the
// join timeout.
func awaitMedia(ctx context.Context, cfg *rampConfig, ms []*member, prog *progress) error {
	deadline := time.Now().Add(cfg.joinTimeout)
	for {
		have, want := 0, 0
		for _, m := range ms {
			have += min(m.receiving(), m.expected(cfg.publishers))
			want += m.expected(cfg.publishers)
		}
		switch {
		case have >= want:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			return fmt.Errorf("%d of %d streams received nothing within -join-timeout %v", want-have, want, cfg.joinTimeout)
		}
		prog.update(fmt.Sprintf("waiting for media: %d of %d streams", have, want))
		sleep(ctx, 100*time.Millisecond)
	}
}

// measureStep measures one step's window and judges it: a synthetic
// report filled from the window, turned into the step's figures.
func measureStep(ctx context.Context, cfg *rampConfig, probe *serverProbe, pubs, subs []*member, n int, prog *progress) rampStep {
	all := append(append([]*member(nil), pubs...), subs...)
	w := newWindow(all, probe)
	host0, at0 := hostCPU(), time.Now()
	w.run(ctx, cfg.stepDuration-cfg.settle, func(line string) {
		prog.update(fmt.Sprintf("step %d, %d subscribers: %s", n, len(subs), line))
	})
	host, secs := hostCPU()-host0, time.Since(at0).Seconds()
	var rep Report
	subStreams, subExpected := 0, 0
	for _, m := range all {
		got, want := min(m.receiving(), m.expected(cfg.publishers)), m.expected(cfg.publishers)
		rep.Streams.Expected += want
		rep.Streams.Receiving += got
		if m.err != nil {
			rep.Clients.Failed++
		}
		if !m.publisher {
			subStreams, subExpected = subStreams+got, subExpected+want
		}
	}
	c := cfg.syntheticConfig
	c.subscribers = len(subs)
	w.fill(&rep, &c)
	s := stepOf(&rep, len(subs), subStreams, subExpected)
	if host0 >= 0 && host >= 0 && secs > 0 {
		// The server is assumed on this host, as make ramp runs it.
		s.OtherCPUPercent = max(100*host/secs-s.CPUPercent-s.LoadCPUPercent, 0)
	}
	s.judge(cfg.limits)
	return s
}

// hostCPU is the CPU time all of this host's CPUs spent busy, in seconds
// (from /proc/stat), or -1 when it cannot be read.
func hostCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return -1
	}
	var busy float64
	// user nice system idle iowait irq softirq steal: all but idle and iowait.
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseFloat(f[i], 64)
		busy += v
	}
	const clockTicks = 100 // USER_HZ, as in procStat
	return busy / clockTicks
}
