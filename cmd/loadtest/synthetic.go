package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-sfu/switchboard/internal/client"
	"github.com/switchboard-sfu/switchboard/signal"
)

type syntheticConfig struct {
	common
	publishers, subscribers int
	bitrate                 bitrate
	fps                     int
	keyframeInterval        time.Duration
	simulcast               bool
	drop                    float64
	concurrency             int
	maxP99                  time.Duration
	warmup                  time.Duration
	tokenSecret             string
	// A cluster: subscribers dial subURL, and with split each room's
	// subscribers avoid its publishers' node (bench-cluster).
	subURL string
	split  bool
}

// clientFlags are the flags of the clients' media and joining, which the
// synthetic and ramp modes share.
func (c *syntheticConfig) clientFlags(fl *flag.FlagSet) {
	fl.Var(&c.bitrate, "bitrate", "video bitrate per publisher (its full layer with -simulcast), e.g. 500k or 1.5M")
	fl.IntVar(&c.fps, "fps", 30, "video frames per second")
	fl.DurationVar(&c.keyframeInterval, "keyframe-interval", 2*time.Second, "time between unrequested keyframes")
	fl.BoolVar(&c.simulcast, "simulcast", false, "publish as the web client does: VP8 layers q, h, f (320x180, 640x360, 1280x720 at 1/10, 3/10 and all of -bitrate) with L1T3 temporal layers")
	fl.Float64Var(&c.drop, "drop", 0, "impairment for testing the tool: subscribers discard this fraction of packets before counting")
	fl.IntVar(&c.concurrency, "join-concurrency", 8, "clients joining at once")
	fl.StringVar(&c.tokenSecret, "token-secret", "",
		"the server's join token `secret`, to mint each client a token (default: $SWITCHBOARD_TOKEN_SECRET)")
}

func (c *syntheticConfig) flags(fl *flag.FlagSet) {
	c.bitrate = 1_500_000
	fl.IntVar(&c.publishers, "publishers", 2, "publishers per room (each sends video and audio, and receives the others)")
	fl.IntVar(&c.subscribers, "subscribers", 4, "subscribers per room (receive every publisher, send nothing)")
	c.clientFlags(fl)
	fl.DurationVar(&c.maxP99, "max-p99", 0, "fail the run when the p99 added latency exceeds this (0: no limit)")
	fl.DurationVar(&c.warmup, "warmup", 0, "time after everyone joined before the measurement starts (lets bandwidth estimates and layers settle)")
	fl.StringVar(&c.subURL, "sub-url", "", "a cluster: the base `URL` subscribers dial (default: -url)")
	fl.BoolVar(&c.split, "split", false, "a cluster: each room's subscribers avoid the node its publishers are on, so that every packet crosses the trunk")
}

// member is one synthetic participant.
type member struct {
	c         *client.Client
	room      int
	publisher bool
	// name, when set, replaces the name joinAll makes from the member's
	// index: ramp mode joins subscribers in batches, and with join tokens
	// a repeated name is a repeated identity, which the server replaces.
	name string
	// avoid: a cluster node this member must not be placed on (-split).
	avoid     string
	joinStart time.Time
	joinTook  time.Duration
	err       error
}

// expected is how many streams the member should receive.
func (m *member) expected(publishers int) int {
	if m.publisher {
		return 2 * (publishers - 1)
	}
	return 2 * publishers
}

// receiving counts the member's streams that delivered a packet, per
// publisher and kind (a simulcast publisher's layers count once).
func (m *member) receiving() int {
	if m.c == nil {
		return 0
	}
	seen := map[[2]string]bool{}
	for _, r := range m.c.Received() {
		if r.Participant != m.c.ID && r.Packets.Load() > 0 {
			seen[[2]string{r.Participant, r.Kind}] = true
		}
	}
	return len(seen)
}

func runSynthetic(ctx context.Context, cfg *syntheticConfig, stderr io.Writer) (*Report, error) {
	switch {
	case cfg.publishers < 1:
		return nil, errors.New("-publishers must be at least 1")
	case cfg.subscribers < 0 || cfg.fps < 1 || cfg.fps > 120 || cfg.concurrency < 1:
		return nil, errors.New("-subscribers, -fps or -join-concurrency out of range")
	case cfg.drop < 0 || cfg.drop > 1:
		return nil, errors.New("-drop must be in [0, 1]")
	case cfg.publishers == 1 && cfg.subscribers == 0:
		return nil, errors.New("nobody would receive anything: add -subscribers or -publishers")
	}
	if cfg.tokenSecret == "" {
		cfg.tokenSecret = os.Getenv("SWITCHBOARD_TOKEN_SECRET")
	}
	rep := &Report{
		Mode: "synthetic", URL: cfg.url, Start: time.Now(),
		Config: map[string]any{
			"rooms": cfg.rooms, "publishers": cfg.publishers, "subscribers": cfg.subscribers,
			"bitrate": int(cfg.bitrate), "fps": cfg.fps, "keyframe_interval_s": cfg.keyframeInterval.Seconds(),
			"simulcast": cfg.simulcast, "drop": cfg.drop, "duration_s": cfg.duration.Seconds(), "warmup_s": cfg.warmup.Seconds(),
		},
	}
	// Pion's warnings (mostly about connections closing at the end) would
	// break up the progress line; the report says what went wrong.
	apiOpts := []client.APIOption{client.PionLogs(&logging.DefaultLoggerFactory{Writer: io.Discard})}
	if cfg.loopback() {
		apiOpts = append(apiOpts, client.LoopbackOnly())
	}
	api, err := client.NewAPI(apiOpts...)
	if err != nil {
		return nil, err
	}

	var pubs, subs []*member
	for r := range cfg.rooms {
		for range cfg.publishers {
			pubs = append(pubs, &member{room: r, publisher: true})
		}
		for range cfg.subscribers {
			subs = append(subs, &member{room: r})
		}
	}
	all := append(append([]*member(nil), pubs...), subs...)
	rep.Clients.Expected = len(all)
	for _, m := range all {
		rep.Streams.Expected += m.expected(cfg.publishers)
	}
	defer closeAll(all)

	prog := newProgress(stderr)
	defer prog.done()
	// Publishers first, each until its media flows, so that the
	// subscribers' first frames measure joining a running room.
	opts := client.Options{VideoBitrate: int(cfg.bitrate), FPS: cfg.fps, KeyframeInterval: cfg.keyframeInterval,
		Simulcast: cfg.simulcast, Drop: cfg.drop}
	joined := 0
	join := func(ms []*member, publish bool) {
		o := opts
		o.Publish = publish
		joinAll(ctx, api, cfg, ms, o, func() {
			joined++
			prog.update(fmt.Sprintf("joining: %d of %d clients", joined, len(all)))
		})
	}
	join(pubs, true)
	if cfg.split {
		for _, s := range subs {
			for _, p := range pubs {
				if p.room == s.room && p.c != nil {
					s.avoid = p.c.Node
				}
			}
		}
	}
	join(subs, false)
	for _, m := range all {
		if m.err != nil {
			rep.Clients.Failed++
		} else {
			rep.Clients.Joined++
		}
	}
	if rep.Clients.Failed > 0 {
		for _, m := range all {
			if m.err != nil {
				fmt.Fprintf(stderr, "loadtest: a client failed to join %s: %v\n", cfg.room(m.room), m.err)
				break
			}
		}
	}

	// Wait for every stream's first packet, or the join timeout.
	receiving := func() int {
		n := 0
		for _, m := range all {
			n += min(m.receiving(), m.expected(cfg.publishers))
		}
		return n
	}
	// A server that crashed or closed on everyone ends the run at once.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		for _, m := range all {
			if m.c != nil {
				select {
				case <-m.c.Gone():
				case <-ctx.Done():
					return
				}
			}
		}
		cancel(errAllGone)
	}()
	deadline := time.Now().Add(cfg.joinTimeout)
	for rep.Clients.Joined > 0 && ctx.Err() == nil && time.Now().Before(deadline) && receiving() < rep.Streams.Expected {
		prog.update(fmt.Sprintf("waiting for media: %d of %d streams", receiving(), rep.Streams.Expected))
		sleep(ctx, 100*time.Millisecond)
	}

	probe := newServerProbe(cfg.metricsURL, cfg.serverPID)
	if cfg.warmup > 0 && rep.Clients.Joined > 0 {
		newWindow(all, probe).run(ctx, cfg.warmup, func(line string) { prog.update("warming up " + line) })
	}
	w := newWindow(all, probe)
	d := cfg.duration
	if rep.Clients.Joined == 0 || ctx.Err() != nil {
		d = 0 // nothing to measure
	}
	w.run(ctx, d, prog.update)
	allGone := rep.Clients.Joined > 0 && errors.Is(context.Cause(ctx), errAllGone)
	rep.Interrupted = ctx.Err() != nil && !allGone
	prog.done()
	rep.Streams.Receiving = receiving()
	w.fill(rep, cfg)
	if allGone {
		rep.fail("every client's signaling connection ended: the server closed them or went away")
	}
	rep.checkCommon(cfg.maxLoss)
	if cfg.maxP99 > 0 && rep.LatencyMS != nil && rep.LatencyMS.P99 > float64(cfg.maxP99)/1e6 {
		rep.fail("p99 added latency %.1f ms is above -max-p99 %v", rep.LatencyMS.P99, cfg.maxP99)
	}
	return rep, nil
}

var errAllGone = errors.New("every client's signaling connection ended")

// joinAll joins ms, cfg.concurrency at a time; a publisher counts as joined
// once its publisher connection is up.
func joinAll(ctx context.Context, api *webrtc.API, cfg *syntheticConfig, ms []*member, opts client.Options, joined func()) {
	var auth *signal.Auth
	if cfg.tokenSecret != "" {
		var err error
		if auth, err = signal.NewAuth([]byte(cfg.tokenSecret)); err != nil {
			for _, m := range ms {
				m.err = err
			}
			return
		}
	}
	sem := make(chan struct{}, cfg.concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, m := range ms {
		if ctx.Err() != nil {
			m.err = ctx.Err()
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			jctx, cancel := context.WithTimeout(ctx, cfg.joinTimeout)
			defer cancel()
			m.joinStart = time.Now()
			name := fmt.Sprintf("sub%d", i)
			if opts.Publish {
				name = fmt.Sprintf("pub%d", i)
			}
			if m.name != "" {
				name = m.name
			}
			o := opts
			if auth != nil {
				var err error
				o.Token, err = auth.Mint(signal.Grant{Identity: fmt.Sprintf("%s-%d-%s", cfg.roomPrefix, m.room, name),
					Name: name, Room: cfg.room(m.room), Publish: opts.Publish, Subscribe: true}, 24*time.Hour)
				if err != nil {
					m.err = err
					return
				}
			}
			ws := cfg.wsURL()
			if !opts.Publish && cfg.subURL != "" {
				ws = signalingURL(cfg.subURL)
			}
			o.Avoid = m.avoid
			c, err := joinFollowing(jctx, api, ws, cfg.room(m.room), name, o)
			m.joinTook = time.Since(m.joinStart)
			if err == nil && opts.Publish {
				select {
				case <-c.PublisherConnected():
				case <-jctx.Done():
					err = fmt.Errorf("publisher connection: %w", jctx.Err())
				}
			}
			m.c, m.err = c, err
			mu.Lock()
			joined()
			mu.Unlock()
		})
	}
	wg.Wait()
}

// joinFollowing joins, following a cluster's redirects to the node that
// takes the join.
func joinFollowing(ctx context.Context, api *webrtc.API, ws, room, name string, o client.Options) (*client.Client, error) {
	for range 5 {
		c, err := client.Join(ctx, api, ws, room, name, o)
		var r *client.RedirectError
		if !errors.As(err, &r) {
			return c, err
		}
		ws, o.Ticket = r.WebSocketURL(), r.Ticket
	}
	return nil, errors.New("redirected five times")
}

// signalingURL is the WebSocket under a base URL.
func signalingURL(base string) string {
	return (&client.RedirectError{URL: base}).WebSocketURL()
}

// closeAll leaves with every client at once.
func closeAll(ms []*member) {
	var wg sync.WaitGroup
	for _, m := range ms {
		if m.c != nil {
			wg.Go(m.c.Close)
		}
	}
	wg.Wait()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// streamSnap is one received stream's counters at one moment.
type streamSnap struct {
	stats   client.StreamStats
	latency client.HistogramSnapshot
}

// window measures the received streams and the server between its first
// and its last snapshot.
type window struct {
	members []*member
	server  serverWindow
	start   time.Time
	cpu0    float64
	// first and prev hold each stream's counters at the window's start and
	// at the last snapshot; a stream that appeared later starts at zero.
	first, prev map[*client.Received]*streamSnap
	prevAt      time.Time
	last        time.Time
}

func newWindow(ms []*member, probe *serverProbe) *window {
	return &window{members: ms, server: serverWindow{probe: probe},
		first: map[*client.Received]*streamSnap{}, prev: map[*client.Received]*streamSnap{}}
}

// streams calls f for every received stream of every member.
func (w *window) streams(f func(m *member, r *client.Received)) {
	for _, m := range w.members {
		if m.c == nil {
			continue
		}
		for _, r := range m.c.Received() {
			f(m, r)
		}
	}
}

// run measures for d, or until ctx ends, calling show with a progress line
// every second.
func (w *window) run(ctx context.Context, d time.Duration, show func(string)) {
	w.snapshot(ctx, true)
	end := time.Now().Add(d)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return // the last snapshot ends the window
		case <-tick.C:
		}
		show(w.snapshot(ctx, false))
	}
	w.snapshot(ctx, false)
}

// snapshot records the counters; the first call starts the window. It
// returns the progress line for the time since the last snapshot.
func (w *window) snapshot(ctx context.Context, start bool) string {
	now := time.Now()
	w.server.sample(ctx, now)
	if start {
		w.start, w.cpu0 = now, selfCPU()
	}
	var packets, bytes, expected, unique int64
	var lat client.HistogramSnapshot
	w.streams(func(_ *member, r *client.Received) {
		var s streamSnap
		s.stats = r.Stats()
		s.latency = r.Latency.Snapshot()
		if start {
			w.first[r] = &s
		}
		p := w.prev[r]
		if p == nil {
			p = &streamSnap{}
			w.prev[r] = p
		}
		packets += s.stats.Packets - p.stats.Packets
		bytes += s.stats.Bytes - p.stats.Bytes
		expected += s.stats.Expected - p.stats.Expected
		unique += s.stats.Unique - p.stats.Unique
		d := s.latency
		d.Sub(&p.latency)
		lat.Add(&d)
		*p = s
	})
	secs := now.Sub(w.prevAt).Seconds()
	w.prevAt, w.last = now, now
	if start || secs <= 0 {
		return ""
	}
	loss := 0.0
	if expected > 0 {
		loss = float64(max(expected-unique, 0)) / float64(expected)
	}
	line := fmt.Sprintf("%3.0fs  rx %.0f pkt/s %.1f Mbit/s  loss %.2f%%  latency p50 %s p99 %s ms",
		now.Sub(w.start).Seconds(), float64(packets)/secs, float64(bytes)*8/secs/1e6, 100*loss,
		num(lat.Quantile(0.5)/1000), num(lat.Quantile(0.99)/1000))
	return line + w.server.progress()
}

// fill computes the report's figures over the window.
func (w *window) fill(rep *Report, cfg *syntheticConfig) {
	secs := w.last.Sub(w.start).Seconds()
	rep.DurationS = secs
	rep.LoadCPUSeconds = selfCPU() - w.cpu0
	var lat client.HistogramSnapshot
	var jitter, fps, firstFrame, join []float64
	perMember := map[*member]int64{}
	var expected, unique int64
	w.streams(func(m *member, r *client.Received) {
		end := w.prev[r]
		if end == nil {
			return
		}
		start := w.first[r]
		if start == nil {
			start = &streamSnap{}
		}
		if end.stats.Packets == start.stats.Packets {
			rep.Streams.Stalled++
		}
		rep.PacketsReceived += end.stats.Packets - start.stats.Packets
		rep.PaddingPackets += end.stats.Padding - start.stats.Padding
		rep.LatePackets += end.stats.Late - start.stats.Late
		expected += end.stats.Expected - start.stats.Expected
		unique += end.stats.Unique - start.stats.Unique
		perMember[m] += end.stats.Bytes - start.stats.Bytes
		d := end.latency
		d.Sub(&start.latency)
		lat.Add(&d)
		if end.stats.Packets > 0 {
			jitter = append(jitter, float64(end.stats.Jitter)/1e6)
		}
		if r.Kind == "video" {
			if secs > 0 {
				fps = append(fps, float64(end.stats.Frames-start.stats.Frames)/secs)
			}
			if first := r.FirstAt.Load(); first > 0 && (!m.publisher || cfg.subscribers == 0) {
				firstFrame = append(firstFrame, float64(first-m.joinStart.UnixNano())/1e6)
			}
		}
	})
	rep.PacketsLost = max(expected-unique, 0)
	if expected > 0 {
		rep.LossRatio = float64(rep.PacketsLost) / float64(expected)
	}
	if lat.Count() > 0 {
		rep.LatencyMS = &Dist{N: int(lat.Count()), Mean: lat.Mean() / 1000, Min: lat.Quantile(0) / 1000,
			P50: lat.Quantile(0.5) / 1000, P95: lat.Quantile(0.95) / 1000, P99: lat.Quantile(0.99) / 1000,
			Max: lat.Quantile(1) / 1000}
	} else {
		rep.LatencyMS = &Dist{}
	}
	var bitrates []float64
	for _, m := range w.members {
		if m.c == nil {
			continue
		}
		join = append(join, float64(m.joinTook)/1e6)
		if (!m.publisher || cfg.subscribers == 0) && secs > 0 {
			bitrates = append(bitrates, float64(perMember[m])*8/secs)
		}
	}
	rep.JitterMS = distOf(jitter)
	rep.FrameRate = distOf(fps)
	rep.FirstFrameMS = distOf(firstFrame)
	jd := distOf(join)
	rep.JoinMS = &jd
	rep.BitrateBPS = distOf(bitrates)
	rep.Server = w.server.stats()
}
