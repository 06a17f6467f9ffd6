package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/internal/browsertest"
)

// These tests check that the load tool measures correctly against the real
// server, built from ./cmd/sfu and run as its own process, as in use. They
// check the tool's figures, not the server's speed.

var server struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if server.dir != "" {
		os.RemoveAll(server.dir)
	}
	os.Exit(code)
}

// serverBinary builds the server once per test run, with -race when the
// tests run with it (which shares the build cache with go test -race).
func serverBinary(t *testing.T) string {
	t.Helper()
	server.once.Do(func() {
		if server.dir, server.err = os.MkdirTemp("", "loadtest-sfu-"); server.err != nil {
			return
		}
		server.bin = filepath.Join(server.dir, "sfu")
		args := []string{"build", "-o", server.bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command(goTool(), append(args, "github.com/switchboard-sfu/switchboard/cmd/sfu")...)
		server.out, server.err = cmd.CombinedOutput()
	})
	if server.err != nil {
		t.Fatalf("building the server: %v\n%s", server.err, server.out)
	}
	return server.bin
}

func goTool() string {
	if p := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}

var listeningURL = regexp.MustCompile(`"url": "(http://[^"]+)"`)

// startServer runs the server on a loopback port, with any extra flags,
// and returns its base URL and PID; it stops the server when the test ends.
func startServer(t *testing.T, extra ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(serverBinary(t), append([]string{"-listen", "127.0.0.1:0", "-loopback", "-log-level", "info"}, extra...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log lockedBuffer
	urls := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteLine(sc.Text())
			if m := listeningURL.FindStringSubmatch(sc.Text()); m != nil && strings.Contains(sc.Text(), "listening") {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		timer := time.AfterFunc(15*time.Second, func() { _ = cmd.Process.Kill() })
		<-done
		err := cmd.Wait()
		timer.Stop()
		if err != nil || t.Failed() {
			t.Logf("server exit: %v; log:\n%s", err, log.String())
		}
	})
	select {
	case u := <-urls:
		return u, cmd.Process.Pid
	case <-done:
		t.Fatalf("the server exited before listening:\n%s", log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not start listening:\n%s", log.String())
	}
	return "", 0
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) WriteLine(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s + "\n")
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runTool runs the command as main does, with -json, and returns its exit
// status and report.
func runTool(t *testing.T, ctx context.Context, args ...string) (int, Report) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.json")
	var stdout, stderr bytes.Buffer
	code := run(ctx, append(args, "-json", path), &stdout, &stderr)
	t.Logf("loadtest %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	var rep Report
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no JSON report: %v", err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("bad JSON report: %v\n%s", err, b)
	}
	// The fields scripts rely on are there by these names.
	var raw map[string]any
	_ = json.Unmarshal(b, &raw)
	for _, k := range []string{"loss_ratio", "first_frame_ms", "packets_received", "failures", "ok"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("the JSON report has no %q", k)
		}
	}
	return code, rep
}

// A clean run on loopback: everything arrives, soon, at the rate sent.
func TestSyntheticMeasuresACleanRun(t *testing.T) {
	url, _ := startServer(t)
	code, rep := runTool(t, context.Background(), "synthetic", "-url", url, "-rooms", "1", "-publishers", "1",
		"-subscribers", "2", "-bitrate", "300k", "-duration", "3s")
	if code != 0 || !rep.OK {
		t.Fatalf("exit %d, failures %v", code, rep.Failures)
	}
	if rep.Streams.Expected != 4 || rep.Streams.Receiving != 4 {
		t.Errorf("streams %+v, want 4 of 4", rep.Streams)
	}
	if rep.PacketsReceived == 0 || rep.LossRatio >= 0.01 {
		t.Errorf("packets %d, loss %.4f", rep.PacketsReceived, rep.LossRatio)
	}
	// Loose on purpose: the machine is shared and other tests run beside
	// this one; a figure over half a second means a measuring error.
	if l := rep.LatencyMS; l == nil || l.N == 0 || l.P50 <= 0 || l.P50 >= 500 || l.P99 < l.P50 {
		t.Errorf("latency %+v, want 0 < p50 < 500 ms <= p99", l)
	}
	if rep.FirstFrameMS.N != 2 || rep.FirstFrameMS.P50 <= 0 {
		t.Errorf("first frame %+v, want one per subscriber", rep.FirstFrameMS)
	}
	// What the subscribers counted is what the server says it sent (which
	// of the frames it forwards is the server's business).
	s := rep.Server
	if s == nil || s.Source != "metrics" || s.CPUSeconds <= 0 || s.RSSBytes <= 0 || s.PacketsSent <= 0 || s.CPUSecondsPer1kPackets == nil {
		t.Fatalf("server %+v", s)
	}
	if ratio := float64(rep.PacketsReceived) / float64(s.PacketsSent); ratio < 0.9 || ratio > 1.1 {
		t.Errorf("the server forwarded %d packets and the subscribers counted %d", s.PacketsSent, rep.PacketsReceived)
	}
	received := rep.BitrateBPS.Mean * float64(rep.BitrateBPS.N) * rep.DurationS / 8
	// (The server counts its bytes after SRTP, the subscribers theirs before.)
	if ratio := received / float64(s.BytesSent); rep.BitrateBPS.N != 2 || ratio < 0.8 || ratio > 1.2 {
		t.Errorf("the server sent %d bytes and the subscribers counted %.0f (bitrate %+v)", s.BytesSent, received, rep.BitrateBPS)
	}
	if f := rep.FrameRate; f.N != 2 || f.Mean <= 0 || f.Max > 31 {
		t.Errorf("frame rate %+v, want some and at most the 30 sent", f)
	}
}

// Subscribers that discard a tenth of what arrives report a tenth lost; the
// server's figures come from /proc with -server-pid.
func TestSyntheticReportsAKnownLoss(t *testing.T) {
	url, pid := startServer(t)
	code, rep := runTool(t, context.Background(), "synthetic", "-url", url, "-publishers", "1", "-subscribers", "4",
		"-bitrate", "300k", "-duration", "3s", "-drop", "0.1", "-server-pid", strconv.Itoa(pid))
	if code != 0 {
		t.Fatalf("exit %d, failures %v", code, rep.Failures)
	}
	// About 1300 packets: 0.06-0.14 is more than four standard deviations.
	if rep.LossRatio < 0.06 || rep.LossRatio > 0.14 {
		t.Errorf("loss %.4f (%d of %d), want about 0.1", rep.LossRatio, rep.PacketsLost, rep.PacketsLost+rep.PacketsReceived)
	}
	if s := rep.Server; s == nil || s.Source != "pid" || s.CPUSeconds <= 0 || s.RSSBytes <= 0 {
		t.Errorf("server %+v, want CPU and RSS from /proc", s)
	}
	// -max-loss turns the same loss into a failed run.
	code, rep = runTool(t, context.Background(), "synthetic", "-url", url, "-publishers", "1", "-subscribers", "2",
		"-bitrate", "300k", "-duration", "1s", "-drop", "0.1", "-max-loss", "0.02")
	if code != 1 || rep.OK || !strings.Contains(strings.Join(rep.Failures, ";"), "max-loss") {
		t.Errorf("exit %d, failures %v; want a failure for -max-loss", code, rep.Failures)
	}
}

// A run that cannot reach its targets exits 1 and says why.
func TestSyntheticFailsWithoutMedia(t *testing.T) {
	t.Run("no server", func(t *testing.T) {
		code, rep := runTool(t, context.Background(), "synthetic", "-url", "http://127.0.0.1:1/", "-duration", "1s")
		if code != 1 || rep.OK || rep.Clients.Joined != 0 || !strings.Contains(strings.Join(rep.Failures, ";"), "nobody joined") {
			t.Errorf("exit %d, %+v, failures %v", code, rep.Clients, rep.Failures)
		}
		if rep.Server != nil {
			t.Errorf("server figures without a server: %+v", rep.Server)
		}
	})
	t.Run("all lost", func(t *testing.T) {
		url, _ := startServer(t)
		code, rep := runTool(t, context.Background(), "synthetic", "-url", url, "-publishers", "1", "-subscribers", "1",
			"-bitrate", "300k", "-duration", "1s", "-drop", "1", "-join-timeout", "2s")
		if code != 1 || rep.OK || rep.PacketsReceived != 0 || !strings.Contains(strings.Join(rep.Failures, ";"), "no packets received") {
			t.Errorf("exit %d, %d packets, failures %v", code, rep.PacketsReceived, rep.Failures)
		}
	})
}

// Ctrl-C ends the window early; the report covers what was measured.
func TestSyntheticInterrupted(t *testing.T) {
	url, _ := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	code, rep := runTool(t, ctx, "synthetic", "-url", url, "-publishers", "2", "-subscribers", "0",
		"-bitrate", "300k", "-duration", "1m")
	if code != 0 || !rep.Interrupted || rep.DurationS <= 0 || rep.DurationS > 5 || rep.PacketsReceived == 0 {
		t.Errorf("exit %d, interrupted %v after %.1f s, %d packets", code, rep.Interrupted, rep.DurationS, rep.PacketsReceived)
	}
	// Without subscribers the publishers' own first frames and rates count.
	if rep.FirstFrameMS.N != 2 || rep.BitrateBPS.N != 2 {
		t.Errorf("first frame %+v, bitrate %+v; want one per publisher", rep.FirstFrameMS, rep.BitrateBPS)
	}
}

// A server that dies ends the run at once, as a failure.
func TestSyntheticServerGone(t *testing.T) {
	url, pid := startServer(t)
	time.AfterFunc(4*time.Second, func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	start := time.Now()
	code, rep := runTool(t, context.Background(), "synthetic", "-url", url, "-publishers", "1", "-subscribers", "1",
		"-bitrate", "300k", "-duration", "1m")
	if code != 1 || rep.OK || rep.Interrupted || !strings.Contains(strings.Join(rep.Failures, ";"), "went away") {
		t.Errorf("exit %d, interrupted %v, failures %v", code, rep.Interrupted, rep.Failures)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the run took %v after the server died", took)
	}
}

// Two tabs of headless Chromium in one room see each other.
func TestChrome(t *testing.T) {
	if _, ok := browsertest.Binary(); !ok {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Chromium found; install chromium or set CHROMIUM_BIN")
		}
		t.Skip("no Chromium found; install chromium or set CHROMIUM_BIN")
	}
	url, _ := startServer(t)
	code, rep := runTool(t, context.Background(), "chrome", "-url", url, "-rooms", "1", "-tabs", "2", "-duration", "5s")
	if code != 0 || !rep.OK {
		t.Fatalf("exit %d, failures %v", code, rep.Failures)
	}
	if rep.Clients.Joined != 2 || rep.Streams.Receiving != 4 {
		t.Errorf("clients %+v, streams %+v", rep.Clients, rep.Streams)
	}
	if rep.FirstFrameMS.N != 2 || rep.FirstFrameMS.P50 <= 0 || rep.PacketsReceived == 0 {
		t.Errorf("first frame %+v, packets %d", rep.FirstFrameMS, rep.PacketsReceived)
	}
	if rep.FrameRate.N == 0 || rep.Freezes == nil || rep.Server == nil || rep.LoadCPUSeconds <= 0 {
		t.Errorf("frame rate %+v, freezes %+v, server %+v, load CPU %v", rep.FrameRate, rep.Freezes, rep.Server, rep.LoadCPUSeconds)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nonsense"},
		{"synthetic", "-bitrate", "fast"},
		{"synthetic", "-rooms", "0"},
		{"synthetic", "-url", "ftp://x/"},
		{"chrome", "-duration", "0s"},
		{"synthetic", "extra"},
	} {
		var out bytes.Buffer
		if code := run(context.Background(), args, &out, &out); code != 2 {
			t.Errorf("loadtest %v: exit %d, want 2\n%s", args, code, out.String())
		}
	}
	var b bitrate
	for in, want := range map[string]int{"1.5M": 1_500_000, "500k": 500_000, "64000": 64_000, "2m": 2_000_000} {
		if err := b.Set(in); err != nil || int(b) != want {
			t.Errorf("bitrate %q = %d, %v; want %d", in, b, err, want)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(`# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
process_resident_memory_bytes 3.3554432e+07
switchboard_tracks{kind="audio"} 4
switchboard_packets_sent_total 123456
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"process_cpu_seconds_total": 12.5, "process_resident_memory_bytes": 33554432, "switchboard_packets_sent_total": 123456}
	if len(m) != len(want) {
		t.Errorf("parsed %v", m)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		// burn enough CPU to show in /proc (10 ms ticks)
	}
	cpu, rss, err := procStat(os.Getpid())
	if err != nil || cpu <= 0 || rss <= 0 {
		t.Errorf("procStat(self) = %v, %v, %v", cpu, rss, err)
	}
}

func TestDist(t *testing.T) {
	var v []float64
	for i := 100; i >= 1; i-- {
		v = append(v, float64(i))
	}
	d := distOf(v)
	if d.N != 100 || d.Min != 1 || d.Max != 100 || d.P50 != 50 || d.P95 != 95 || d.P99 != 99 || d.Mean != 50.5 {
		t.Errorf("%+v", d)
	}
	if d := distOf(nil); d.N != 0 {
		t.Errorf("%+v", d)
	}
}
