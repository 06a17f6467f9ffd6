package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-sfu/switchboard/internal/headless"
)

type chromeConfig struct {
	common
	tabs, browsers int
	chromium       string
	fps            int
	codec          string
}

func (c *chromeConfig) flags(fl *flag.FlagSet) {
	fl.IntVar(&c.tabs, "tabs", 2, "tabs in all, spread over the rooms; each joins with fake camera and microphone")
	fl.IntVar(&c.browsers, "browsers", 1, "Chromium processes to spread the tabs over")
	fl.StringVar(&c.chromium, "chromium", "", "the Chromium `binary` (default: $CHROMIUM_BIN or the first one found)")
	fl.IntVar(&c.fps, "fps", 30, "frame rate of the fake camera")
	fl.StringVar(&c.codec, "codec", "", "video codec the tabs prefer (vp8, vp9, h264; default: the web client's)")
}

// chromeStats is what statsJS returns for a tab.
type chromeStats struct {
	Joined     bool           `json:"joined"`
	FirstFrame float64        `json:"firstFrame"` // ms from page load; -1 before the first frame
	Streams    []chromeStream `json:"streams"`
}

// chromeStream is one inbound-rtp entry of the subscriber connection.
type chromeStream struct {
	ID      string  `json:"id"`
	Kind    string  `json:"kind"`
	Packets int64   `json:"packets"`
	Lost    int64   `json:"lost"`
	Bytes   int64   `json:"bytes"`
	Jitter  float64 `json:"jitter"` // seconds
	Frames  int64   `json:"frames"` // decoded
	Freezes int64   `json:"freezes"`
	FreezeS float64 `json:"freezeS"`
}

// statsJS reads window.switchboard (web/app.js) and the subscriber
// connection's getStats().
const statsJS = `(async () => {
  const sb = window.switchboard;
  if (!sb) return {joined: false, firstFrame: -1, streams: []};
  const out = {joined: !!(sb.you && sb.you.id), streams: [],
    firstFrame: sb.firstRemoteFrameAt == null ? -1 : sb.firstRemoteFrameAt - sb.loadedAt};
  const pc = sb.subscriber;
  if (pc && pc.signalingState !== 'closed') (await pc.getStats()).forEach((r) => {
    if (r.type !== 'inbound-rtp') return;
    out.streams.push({id: r.id, kind: r.kind, packets: r.packetsReceived || 0, lost: r.packetsLost || 0,
      bytes: r.bytesReceived || 0, jitter: r.jitter || 0, frames: r.framesDecoded || 0,
      freezes: r.freezeCount || 0, freezeS: r.totalFreezesDuration || 0});
  });
  return out;
})()`

// tab is one page of the load.
type tab struct {
	ctx    context.Context
	cancel context.CancelFunc
	room   int
	url    string
	err    error

	first, prev map[string]chromeStream // per stream id: at the window's start, at the last sample
	firstFrame  float64
	fps         []float64 // per video stream and second
	lastAt      time.Time
	joined      bool
}

func runChrome(ctx context.Context, cfg *chromeConfig, stderr io.Writer) (*Report, error) {
	if cfg.tabs < 1 || cfg.browsers < 1 || cfg.fps < 1 {
		return nil, errors.New("-tabs, -browsers and -fps must be at least 1")
	}
	bin := cfg.chromium
	if bin == "" {
		var ok bool
		if bin, ok = headless.Binary(); !ok {
			return nil, errors.New("no Chromium found: install chromium, set CHROMIUM_BIN or pass -chromium")
		}
	}
	rep := &Report{
		Mode: "chrome", URL: cfg.url, Start: time.Now(),
		Config: map[string]any{"rooms": cfg.rooms, "tabs": cfg.tabs, "browsers": cfg.browsers, "fps": cfg.fps,
			"codec": cfg.codec, "duration_s": cfg.duration.Seconds(), "chromium": bin},
		Clients: Counts{Expected: cfg.tabs},
	}
	perRoom := make([]int, cfg.rooms)
	for i := range cfg.tabs {
		perRoom[i%cfg.rooms]++
	}
	for _, n := range perRoom {
		rep.Streams.Expected += n * 2 * (n - 1)
	}

	prog := newProgress(stderr)
	defer prog.done()
	var browsers []*browser
	defer func() {
		for _, b := range browsers {
			b.close()
		}
	}()
	for range cfg.browsers {
		prog.update(fmt.Sprintf("starting Chromium %d of %d", len(browsers)+1, cfg.browsers))
		b, err := launch(bin, cfg.fps)
		if err != nil {
			return nil, err
		}
		browsers = append(browsers, b)
	}

	// Blank tabs first, then every tab navigates at once, so that a tab's
	// time to first frame measures joining and not opening the others.
	tabs := make([]*tab, cfg.tabs)
	for i := range tabs {
		prog.update(fmt.Sprintf("opening tab %d of %d", i+1, cfg.tabs))
		t := &tab{room: i % cfg.rooms, first: map[string]chromeStream{}, prev: map[string]chromeStream{}, firstFrame: -1}
		q := url.Values{"room": {cfg.room(t.room)}, "name": {"tab" + strconv.Itoa(i)}}
		if cfg.codec != "" {
			q.Set("codec", cfg.codec)
		}
		t.url = cfg.base.String() + "?" + q.Encode()
		t.ctx, t.cancel = chromedp.NewContext(browsers[i%len(browsers)].ctx)
		tabs[i] = t
		// The first action creates the target; a timer bounds it, since a
		// deadline on t.ctx would close the tab later.
		guard := time.AfterFunc(cfg.joinTimeout, t.cancel)
		err := chromedp.Do(t.ctx)
		guard.Stop()
		if err != nil {
			return nil, fmt.Errorf("opening a tab: %w", err)
		}
	}
	start := time.Now()
	eachTab(tabs, func(t *tab) {
		t.err = evalJS(ctx, t.ctx, 10*time.Second, fmt.Sprintf("location.assign(%q), true", t.url), nil)
	})

	// Wait for every tab to join and every stream's first packet.
	deadline := start.Add(cfg.joinTimeout)
	var lastSample time.Time
	for {
		sampleAll(ctx, tabs, phaseJoin, &lastSample)
		joined := 0
		for _, t := range tabs {
			if t.joined {
				joined++
			}
		}
		receiving := chromeReceiving(tabs, perRoom)
		prog.update(fmt.Sprintf("joining: %d of %d tabs joined, %d of %d streams receiving", joined, len(tabs), receiving, rep.Streams.Expected))
		if (joined == len(tabs) && receiving >= rep.Streams.Expected) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		sleep(ctx, 500*time.Millisecond)
	}

	// The window: every second, every tab's getStats().
	probe := newServerProbe(cfg.metricsURL, cfg.serverPID)
	server := serverWindow{probe: probe}
	server.sample(ctx, time.Now())
	windowStart := time.Now()
	var dirs []string
	for _, b := range browsers {
		dirs = append(dirs, b.dataDir)
	}
	loadCPU := selfCPU() + profileCPU(dirs)
	sampleAll(ctx, tabs, phaseStart, &lastSample)
	end := windowStart.Add(cfg.duration)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
loop:
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			rep.Interrupted = true
			break loop
		case <-tick.C:
		}
		now := time.Now()
		server.sample(ctx, now)
		line := sampleAll(ctx, tabs, phaseWindow, &lastSample)
		prog.update(fmt.Sprintf("%3.0fs  %s%s", now.Sub(windowStart).Seconds(), line, server.progress()))
	}
	windowEnd := time.Now()
	rep.LoadCPUSeconds = selfCPU() + profileCPU(dirs) - loadCPU
	prog.done()
	secs := windowEnd.Sub(windowStart).Seconds()
	rep.DurationS = secs

	var firstFrame, jitter, bitrates, fps []float64
	var lost, freezes int64
	var freezeS float64
	videoStreams := 0
	for _, t := range tabs {
		if t.err != nil || !t.joined {
			rep.Clients.Failed++
			continue
		}
		rep.Clients.Joined++
		if t.firstFrame >= 0 {
			firstFrame = append(firstFrame, t.firstFrame)
		}
		var bytes int64
		for id, end := range t.prev {
			start := t.first[id]
			if end.Packets == start.Packets {
				rep.Streams.Stalled++
			}
			rep.PacketsReceived += end.Packets - start.Packets
			lost += end.Lost - start.Lost
			bytes += end.Bytes - start.Bytes
			if end.Packets > 0 {
				jitter = append(jitter, end.Jitter*1000)
			}
			if end.Kind == "video" {
				videoStreams++
				freezes += end.Freezes - start.Freezes
				freezeS += end.FreezeS - start.FreezeS
			}
		}
		if secs > 0 {
			bitrates = append(bitrates, float64(bytes)*8/secs)
		}
		fps = append(fps, t.fps...)
	}
	rep.Streams.Receiving = chromeReceiving(tabs, perRoom)
	rep.PacketsLost = max(lost, 0)
	if total := rep.PacketsReceived + rep.PacketsLost; total > 0 {
		rep.LossRatio = float64(rep.PacketsLost) / float64(total)
	}
	rep.FirstFrameMS = distOf(firstFrame)
	rep.JitterMS = distOf(jitter)
	rep.BitrateBPS = distOf(bitrates)
	rep.FrameRate = distOf(fps)
	rep.Freezes = &Freezes{Count: freezes, TotalS: freezeS}
	if videoStreams > 0 && secs > 0 {
		rep.Freezes.PerMinPerStream = float64(freezes) / float64(videoStreams) / (secs / 60)
	}
	rep.Server = server.stats()
	rep.checkCommon(cfg.maxLoss)
	if rep.FirstFrameMS.N < rep.Clients.Joined && len(tabs) > cfg.rooms {
		rep.fail("%d of %d tabs never showed a remote frame", rep.Clients.Joined-rep.FirstFrameMS.N, rep.Clients.Joined)
	}
	return rep, nil
}

// chromeReceiving counts, per tab, the streams that delivered packets (as of
// the last sample), capped at what the tab's room size promises.
func chromeReceiving(tabs []*tab, perRoom []int) int {
	n := 0
	for _, t := range tabs {
		got := 0
		for _, s := range t.prev {
			if s.Packets > 0 {
				got++
			}
		}
		n += min(got, 2*(perRoom[t.room]-1))
	}
	return n
}

// phase tells sampleAll what a sample is for.
type phase int

const (
	phaseJoin   phase = iota // before the window: only who joined and receives
	phaseStart               // the window's first sample
	phaseWindow              // every second in the window
)

// sampleAll reads every tab's stats at once and returns the progress line;
// lastSample is when it last ran, for the line's rates.
func sampleAll(ctx context.Context, tabs []*tab, ph phase, lastSample *time.Time) string {
	start := ph == phaseStart
	var mu sync.Mutex
	var packets, lost, bytes int64
	var frames float64
	videos, joined := 0, 0
	now := time.Now()
	eachTab(tabs, func(t *tab) {
		if t.err != nil {
			return
		}
		var s chromeStats
		if err := evalJS(ctx, t.ctx, 2*time.Second, statsJS, &s); err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		t.joined = t.joined || s.Joined
		if t.joined {
			joined++
		}
		if s.FirstFrame >= 0 {
			t.firstFrame = s.FirstFrame
		}
		secs := now.Sub(t.lastAt).Seconds()
		for _, st := range s.Streams {
			if start {
				t.first[st.ID] = st
			}
			p := t.prev[st.ID]
			packets += st.Packets - p.Packets
			lost += st.Lost - p.Lost
			bytes += st.Bytes - p.Bytes
			if st.Kind == "video" && ph == phaseWindow && secs > 0 {
				f := float64(st.Frames-p.Frames) / secs
				t.fps = append(t.fps, f)
				frames += f
				videos++
			}
			t.prev[st.ID] = st
		}
		t.lastAt = now
	})
	if ph != phaseWindow {
		*lastSample = now
		return ""
	}
	loss := 0.0
	if packets+lost > 0 {
		loss = float64(max(lost, 0)) / float64(packets+max(lost, 0))
	}
	avgFPS := 0.0
	if videos > 0 {
		avgFPS = frames / float64(videos)
	}
	secs := now.Sub(*lastSample).Seconds()
	*lastSample = now
	if secs <= 0 {
		return ""
	}
	return fmt.Sprintf("tabs %d/%d  rx %.0f pkt/s %.1f Mbit/s  loss %.2f%%  %.1f fps per stream",
		joined, len(tabs), float64(packets)/secs, float64(bytes)*8/1e6/secs, 100*loss, avgFPS)
}

// eachTab runs f for every tab at once and waits.
func eachTab(tabs []*tab, f func(*tab)) {
	var wg sync.WaitGroup
	for _, t := range tabs {
		wg.Go(func() { f(t) })
	}
	wg.Wait()
}

// evalJS evaluates expr in a tab, awaiting a promise, and decodes the JSON
// result into out (which may be nil). ctx and timeout bound the call;
// chromedp needs the tab's own context for the call itself.
func evalJS(ctx, tabCtx context.Context, timeout time.Duration, expr string, out any) error {
	rctx, cancel := context.WithTimeout(tabCtx, timeout)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	raw, err := chromedp.Run(rctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return err
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// browser is one Chromium process.
type browser struct {
	ctx         context.Context
	cancel      context.CancelFunc
	cancelAlloc context.CancelFunc
	dataDir     string
}

// launch starts a headless Chromium with the flags of internal/browsertest:
// fake media devices, loopback WebRTC, no throttling of background tabs, and
// no network but the server's host.
func launch(bin string, fps int) (*browser, error) {
	dataDir, err := os.MkdirTemp("", "loadtest-chromium-")
	if err != nil {
		return nil, err
	}
	alloc := headless.Options(bin, dataDir, fps)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), alloc...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// The first Run ties the browser's life to ctx; a timer bounds the start.
	guard := time.AfterFunc(60*time.Second, cancel)
	err = chromedp.Do(ctx)
	guard.Stop()
	if err != nil {
		cancel()
		cancelAlloc()
		_ = os.RemoveAll(dataDir)
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	return &browser{ctx: ctx, cancel: cancel, cancelAlloc: cancelAlloc, dataDir: dataDir}, nil
}

// close closes the browser gracefully, then kills what is left.
func (b *browser) close() {
	cctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	_ = chromedp.Cancel(cctx)
	cancel()
	b.cancel()
	b.cancelAlloc()
	_ = os.RemoveAll(b.dataDir)
}

// profileCPU is the CPU time in seconds of the processes that run with one
// of dirs as their Chromium profile: the browsers and their helpers, whose
// load competes with the server's on one host. (Chromium passes
// --user-data-dir on to its helpers; zygote children separate their
// arguments with spaces.)
func profileCPU(dirs []string) float64 {
	entries, _ := os.ReadDir("/proc")
	var total float64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.FieldsFunc(string(cmdline), func(r rune) bool { return r == 0 || r == ' ' })
		if !slices.ContainsFunc(args, func(a string) bool {
			return slices.ContainsFunc(dirs, func(d string) bool { return a == "--user-data-dir="+d })
		}) {
			continue
		}
		if cpu, _, err := procStat(pid); err == nil {
			total += cpu
		}
	}
	return total
}
