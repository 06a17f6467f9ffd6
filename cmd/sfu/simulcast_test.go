package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/internal/browsertest"
	"github.com/switchboard-sfu/switchboard/internal/netlab"
	"github.com/switchboard-sfu/switchboard/internal/poll"
)

// inboundVideo reads what a viewer tab decodes of its one remote video.
const inboundVideo = `(async () => {
  const sb = window.switchboard, pc = sb.subscriber;
  if (!pc) return null;
  let r = null;
  (await pc.getStats()).forEach(s => {
    if (s.type === 'inbound-rtp' && s.kind === 'video' && (!r || (s.bytesReceived || 0) > (r.bytesReceived || 0))) r = s;
  });
  if (!r) return null;
  const state = Object.values(sb.streams || {})[0] || {};
  return {width: r.frameWidth || 0, frames: r.framesDecoded || 0, fps: r.framesPerSecond || 0,
    freezes: r.freezeCount || 0, freezeSeconds: r.totalFreezesDuration || 0, bytes: r.bytesReceived || 0,
    lost: r.packetsLost || 0, nacks: r.nackCount || 0, layer: state.layer || '', paused: !!state.paused};
})()`

type inbound struct {
	Width         int     `json:"width"`
	Frames        int     `json:"frames"`
	FPS           float64 `json:"fps"`
	Freezes       int     `json:"freezes"`
	FreezeSeconds float64 `json:"freezeSeconds"`
	Bytes         int     `json:"bytes"`
	Lost          int     `json:"lost"`
	Nacks         int     `json:"nacks"`
	Layer         string  `json:"layer"`
	Paused        bool    `json:"paused"`
}

// sample is one second of a viewer's reception.
type sample struct {
	at   time.Duration
	in   inbound
	kbps int
}

func (s sample) String() string {
	return fmt.Sprintf("%4.0fs %-1s %4dpx %4.1ffps %5dkbps freezes=%d", s.at.Seconds(), s.in.Layer, s.in.Width, s.in.FPS, s.kbps, s.in.Freezes)
}

// viewer polls a tab once a second and keeps the samples.
type viewer struct {
	name    string
	tab     *browsertest.Tab
	samples []sample
}

func (v *viewer) poll(ctx context.Context, start time.Time) (sample, error) {
	var in *inbound
	if err := v.tab.Eval(ctx, inboundVideo, &in); err != nil {
		return sample{}, err
	}
	s := sample{at: time.Since(start)}
	if in != nil {
		s.in = *in
	}
	if n := len(v.samples); n > 0 {
		prev := v.samples[n-1]
		s.kbps = (s.in.Bytes - prev.in.Bytes) * 8 / 1000 / max(1, int((s.at-prev.at).Seconds()+0.5))
	}
	v.samples = append(v.samples, s)
	return s, nil
}

func (v *viewer) log(t *testing.T) {
	var b strings.Builder
	for _, s := range v.samples {
		fmt.Fprintf(&b, "\n  %s", s)
	}
	t.Logf("%s:%s", v.name, b.String())
}

// A simulcast publisher, a viewer behind a capped link and an unconstrained
// viewer: the constrained one gets a layer that fits at full frame rate and
// keeps decoding, the other the high layer; when the cap lifts the
// constrained one climbs back.
func TestBrowserSimulcastUnderCap(t *testing.T) {
	for _, c := range []capCase{
		// The case: the low layer (about 150 kbit/s) fits, the
		// middle one (about 500) does not.
		{name: "300kbit_2pct_loss", rate: "300kbit", kbps: 300, loss: 0.02, maxWidth: 320},
		// Where LiveKit gives about 5 fps at 640 px: 640 px does not fit
		// with audio, so 320 px at full frame rate.
		{name: "500kbit", rate: "500kbit", kbps: 500, maxWidth: 640},
	} {
		t.Run(c.name, func(t *testing.T) { testUnderCap(t, c) })
	}
}

type capCase struct {
	name     string
	rate     string // tc syntax
	kbps     int
	loss     float64
	maxWidth int // the widest layer the constrained viewer may get
}

func testUnderCap(t *testing.T, c capCase) {
	link := netlab.New(t)
	port := startServerBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 70*time.Second)
	defer cancel()

	if err := link.Cap(c.rate); err != nil {
		t.Fatal(err)
	}
	if c.loss > 0 {
		if err := link.Loss(c.loss); err != nil {
			t.Fatal(err)
		}
	}
	near := browsertest.Launch(t, browsertest.WithFakeCameraFPS(30))
	origin := fmt.Sprintf("http://%s:%s", link.HostIP, port)
	far := launchBehind(t, link, origin)

	pub := near.NewTab(t, fmt.Sprintf("http://127.0.0.1:%s/?room=sim&name=camera", port))
	// Dynacast switches layers off while nobody watches, so the publisher's
	// three layers are checked once the viewers are in.
	var publishing bool
	if err := pub.WaitFor(ctx, `!!(window.switchboard.publisher && window.switchboard.publisher.connectionState === 'connected')`, &publishing); err != nil {
		t.Fatalf("publisher never connected: %v\n%s", err, pub.Console())
	}

	fast := &viewer{name: "unconstrained", tab: near.NewTab(t, fmt.Sprintf("http://127.0.0.1:%s/?room=sim&name=fast&publish=0", port))}
	slow := &viewer{name: fmt.Sprintf("%s + %.0f%% loss", c.rate, 100*c.loss), tab: far.NewTab(t, origin+"/?room=sim&name=slow&publish=0")}
	defer fast.log(t)
	defer slow.log(t)

	// Both viewers show the video large, as a user with a big window would,
	// so that bandwidth, not tile size, decides their layer.
	for _, v := range []*viewer{fast, slow} {
		if err := v.tab.SetViewport(ctx, 4000, 2250); err != nil {
			t.Fatal(err)
		}
	}

	// Chrome enables its top layer only once its own estimate of the uplink
	// has grown; judge the viewers from then on.
	var layers int
	if err := pub.WaitFor(ctx, `(async () => {
  let n = 0; (await window.switchboard.publisher.getStats()).forEach(s => { if (s.type === 'outbound-rtp' && s.kind === 'video' && s.framesEncoded > 0 && s.framesPerSecond > 0) n++; });
  return n >= 3 && n; })()`, &layers); err != nil {
		var out any
		_ = pub.Eval(context.Background(), `(async () => { const r = []; (await window.switchboard.publisher.getStats()).forEach(s => { if (s.type === 'outbound-rtp' && s.kind === 'video') r.push([s.rid, s.frameWidth, s.framesPerSecond, s.qualityLimitationReason, s.active, s.targetBitrate]); }); return [r, window.switchboard.publishLayers]; })()`, &out)
		t.Fatalf("publisher never sent three layers: %v\n%v", err, out)
	}

	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for range 25 {
		<-tick.C
		for _, v := range []*viewer{fast, slow} {
			if _, err := v.poll(ctx, start); err != nil {
				t.Fatalf("%s: %v", v.name, err)
			}
		}
	}
	// Judge the last 10 s, once the estimate has settled.
	settled := func(v *viewer) []sample { return v.samples[len(v.samples)-10:] }
	lowFrames, lowKbps := 0, 0
	for _, s := range settled(slow) {
		if s.in.Width > c.maxWidth || s.in.Paused {
			t.Errorf("constrained viewer at %v: %s, want at most %d px, not paused", s.at, s, c.maxWidth)
		}
		lowKbps += s.kbps
	}
	ss := settled(slow)
	// The camera runs at 30 fps: a layer at its full frame rate, not its
	// base temporal layer alone (7.5 fps) or two of three (15 fps).
	lowFrames = ss[len(ss)-1].in.Frames - ss[0].in.Frames
	lowSeconds := (ss[len(ss)-1].at - ss[0].at).Seconds()
	if fps := float64(lowFrames) / lowSeconds; fps < 24 {
		t.Errorf("constrained viewer decoded %.1f fps over the last 10 s, want at least 24", fps)
	}
	if f := ss[len(ss)-1].in.Freezes - ss[0].in.Freezes; f > 1 {
		t.Errorf("constrained viewer froze %d times in 10 s", f)
	}
	avg := lowKbps / len(ss)
	if avg > c.kbps {
		t.Errorf("constrained viewer received %d kbit/s through a %d kbit/s cap", avg, c.kbps)
	}
	t.Logf("constrained viewer, last 10 s: %d px, %.1f fps, %d kbit/s of %d, %d freezes", ss[len(ss)-1].in.Width,
		float64(lowFrames)/lowSeconds, avg, c.kbps, ss[len(ss)-1].in.Freezes-ss[0].in.Freezes)
	fs := settled(fast)
	for _, s := range fs[len(fs)-5:] {
		if s.in.Width < 1280 {
			t.Errorf("unconstrained viewer at %v: %s, want the 1280 px layer", s.at, s)
		}
	}
	if f := fs[len(fs)-1].in.Freezes - fs[0].in.Freezes; f > 1 {
		t.Errorf("unconstrained viewer froze %d times in 10 s", f)
	}

	// What operators see of it.
	m := scrapeMetrics(t, port)
	if m["switchboard_layer_switches_total"] < 2 || m["switchboard_probe_padding_bytes_total"] <= 0 ||
		m["switchboard_subscriber_bandwidth_bps_count"] != 3 {
		t.Errorf("metrics: %v layer switches, %v probe padding bytes, %v bandwidth estimates; want at least 2, some, and 3",
			m["switchboard_layer_switches_total"], m["switchboard_probe_padding_bytes_total"], m["switchboard_subscriber_bandwidth_bps_count"])
	}

	// Lift the cap: the constrained viewer climbs back.
	if err := link.Uncap(); err != nil {
		t.Fatal(err)
	}
	if err := link.ClearLoss(); err != nil {
		t.Fatal(err)
	}
	lifted := time.Now()
	for {
		<-tick.C
		s, err := slow.poll(ctx, start)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fast.poll(ctx, start); err != nil {
			t.Fatal(err)
		}
		if s.in.Width > ss[len(ss)-1].in.Width {
			t.Logf("constrained viewer back to %d px %.1f s after the cap lifted", s.in.Width, time.Since(lifted).Seconds())
			break
		}
		if time.Since(lifted) > 15*time.Second {
			t.Fatalf("constrained viewer still at %d px 15 s after the cap lifted", s.in.Width)
		}
	}
}

// startServerBinary runs the server as its own process, built without the
// race detector: the in-process server under -race costs so much CPU that
// its send timestamps, and with them the bandwidth estimate, turn to noise.
// $SWITCHBOARD_SFU_BIN names a built binary; otherwise the tests build one
// once. It returns the HTTP port.
func startServerBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("SWITCHBOARD_SFU_BIN")
	if bin == "" {
		bin = builtSFU(t)
	}
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	cmd := exec.Command(bin, "-listen", "0.0.0.0:"+port, "-loopback", "-log-level", "debug")
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if p := os.Getenv("SWITCHBOARD_SERVER_LOG"); p != "" {
			_ = os.WriteFile(p, []byte(logs.String()), 0o644)
		} else if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	poll.Until(t, 10*time.Second, "the server to listen on "+port, func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return port
}

var (
	buildOnce  sync.Once
	buildDir   string
	buildError error
)

// builtSFU builds the server once for all tests that need it as a process;
// TestMain removes it.
func builtSFU(t *testing.T) string {
	buildOnce.Do(func() {
		if buildDir, buildError = os.MkdirTemp("", "switchboard-sfu-"); buildError != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", buildDir+"/sfu", ".").CombinedOutput()
		if err != nil {
			buildError = fmt.Errorf("building the server: %v\n%s", err, out)
		}
	})
	if buildError != nil {
		t.Fatal(buildError)
	}
	return buildDir + "/sfu"
}

func removeBuiltSFU() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// scrapeMetrics reads the server's /metrics into name -> value, for metrics
// without labels.
func scrapeMetrics(t *testing.T, port string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + port + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || strings.HasPrefix(line, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			m[f[0]] = v
		}
	}
	return m
}
