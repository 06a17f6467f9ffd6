package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/internal/browsertest"
	"github.com/switchboard-sfu/switchboard/internal/firefoxtest"
)

// page is what the tests ask of a tab in either browser.
type page interface {
	Eval(ctx context.Context, expr string, out any) error
	WaitFor(ctx context.Context, expr string, out any) error
	Console() []string
}

// receivedFrom waits until p decodes video from participant (frames rising
// at a width) and receives its audio, and returns the last sample.
func receivedFrom(ctx context.Context, t *testing.T, p page, who, participant string, ok func(media) bool) media {
	t.Helper()
	var first, got map[string]media
	for {
		got = nil
		if err := p.Eval(ctx, remoteMedia, &got); err == nil {
			m := got[participant]
			if first == nil && m.Frames > 0 {
				first = got
			}
			if first != nil && m.Frames > first[participant].Frames && m.Audio > first[participant].Audio && m.Width > 0 && ok(m) {
				return m
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not decoding %s as wanted: %+v\nconsole: %v", who, participant, got[participant], p.Console())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func joinedID(ctx context.Context, t *testing.T, p page, who string) string {
	t.Helper()
	var id string
	if err := p.WaitFor(ctx, `window.switchboard && window.switchboard.you && window.switchboard.you.id`, &id); err != nil {
		t.Fatalf("%s never joined: %v\nconsole: %v", who, err, p.Console())
	}
	return id
}

// Firefox and Chromium in one room: each decodes the other's video and
// receives its audio; Firefox publishes simulcast, and the server switches
// the Chromium viewer between its layers as the viewer's tile changes size.
func TestFirefoxWithChromium(t *testing.T) {
	_, base := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	chrome := browsertest.Launch(t).NewTab(t, "about:blank")
	if err := chrome.SetViewport(ctx, 1920, 1080); err != nil {
		t.Fatal(err)
	}
	if err := chrome.Eval(ctx, fmt.Sprintf(`location.assign(%q), true`, base+"/?room=fx&name=chromium"), nil); err != nil {
		t.Fatal(err)
	}
	fx := firefoxtest.Launch(t).NewTab(t, base+"/?room=fx&name=firefox")
	chromeID, fxID := joinedID(ctx, t, chrome, "chromium"), joinedID(ctx, t, fx, "firefox")

	m := receivedFrom(ctx, t, fx, "firefox", chromeID, func(media) bool { return true })
	t.Logf("firefox receives chromium: %v at %d px", m, m.Width)
	big := receivedFrom(ctx, t, chrome, "chromium", fxID, func(m media) bool { return m.Width >= 640 })
	t.Logf("chromium receives firefox on a large tile: %v at %d px", big, big.Width)

	var layers []string
	if err := chrome.Eval(ctx, fmt.Sprintf(`Object.values(window.switchboard.tracks).filter(t => t.participant === %q && t.kind === 'video').flatMap(t => t.layers)`, fxID), &layers); err != nil {
		t.Fatal(err)
	}
	t.Logf("firefox's camera arrives with simulcast layers %v", layers)
	if len(layers) < 2 {
		t.Fatalf("firefox published layers %v; want simulcast", layers)
	}
	// A small tile gets a small layer of the same simulcast track.
	if err := chrome.SetViewport(ctx, 800, 600); err != nil {
		t.Fatal(err)
	}
	small := receivedFrom(ctx, t, chrome, "chromium", fxID, func(m media) bool { return m.Width > 0 && m.Width <= 320 })
	t.Logf("chromium receives firefox on a small tile: %v at %d px", small, small.Width)
}

// A Firefox viewer behind a 500 kbit/s downlink keeps a smooth, smaller
// picture of a Chromium publisher's 720p simulcast camera: the server
// sends it a layer that fits instead of the one its large tile asks for.
//
// Firefox's only address here is firefoxtest.Address (it gathers no
// loopback candidates), so everything the server's media port sends to that
// address is Firefox's downlink, or RTCP to the Chromium publisher, which
// receives no media; the cap is a tc class on loopback for exactly that.
func TestFirefoxViewerUnderCap(t *testing.T) {
	port, _ := strconv.Atoi(freePort(t, "udp"))
	_, base := startServerWith(t, func(c *Config) { c.ICE.UDPPort = port })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	chrome := browsertest.Launch(t).NewTab(t, base+"/?room=cap&name=chromium")
	b := firefoxtest.Launch(t) // gives the namespace firefoxtest.Address first
	capDownlink(t, firefoxtest.Address, port, "500kbit")
	fx := b.NewTab(t, "about:blank")
	if err := fx.SetViewport(ctx, 1920, 1080); err != nil {
		t.Fatal(err)
	}
	if err := fx.Eval(ctx, fmt.Sprintf(`location.assign(%q), true`, base+"/?room=cap&name=firefox&publish=0"), nil); err != nil {
		t.Fatal(err)
	}
	chromeID := joinedID(ctx, t, chrome, "chromium")
	joinedID(ctx, t, fx, "firefox")
	receivedFrom(ctx, t, fx, "firefox", chromeID, func(media) bool { return true })

	// Past the start, when the server finds the cap, one frame count a
	// second over 10 s.
	settle := time.NewTimer(10 * time.Second)
	<-settle.C
	var frames []int
	var last media
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for range 11 {
		var got map[string]media
		if err := fx.Eval(ctx, remoteMedia, &got); err != nil {
			t.Fatal(err)
		}
		last = got[chromeID]
		frames = append(frames, last.Frames)
		<-tick.C
	}
	fps, worst := float64(frames[10]-frames[0])/10, frames[1]-frames[0]
	for i := 1; i < len(frames); i++ {
		worst = min(worst, frames[i]-frames[i-1])
	}
	t.Logf("firefox behind 500 kbit/s: %.1f fps over 10 s, the slowest second %d frames, at %d px (frame counts a second apart: %v)", fps, worst, last.Width, frames)
	if last.Width == 0 || last.Width > 640 {
		t.Errorf("decoded at %d px; a 500 kbit/s link fits 320 or 640", last.Width)
	}
	if fps < 12 || worst < 3 {
		t.Errorf("%.1f fps, slowest second %d frames: not smooth", fps, worst)
	}
	// The cap was on the path: its class carried the video.
	out, _ := exec.Command("tc", "-s", "class", "show", "dev", "lo", "classid", "1:20").Output()
	var sent int
	if m := regexp.MustCompile(`Sent (\d+) bytes`).FindSubmatch(out); m != nil {
		sent, _ = strconv.Atoi(string(m[1]))
	}
	t.Logf("the capped class carried %d kB", sent/1000)
	if sent < 500_000 {
		t.Errorf("the cap carried only %d bytes: the video did not go through it\n%s", sent, out)
	}
}

// capDownlink limits what the server's UDP port sends to addr to rate, with
// a queue of about 200 ms, as a slow access link has; loopback carries it,
// since addr is this namespace's own.
func capDownlink(t *testing.T, addr string, port int, rate string) {
	t.Helper()
	steps := [][]string{
		{"qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10"},
		{"class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit"},
		{"class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", rate, "ceil", rate, "burst", "8kb"},
		{"qdisc", "add", "dev", "lo", "parent", "1:20", "handle", "20:", "bfifo", "limit", "12500"},
		{"filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "u32", "match", "ip", "dst", addr + "/32",
			"match", "ip", "sport", strconv.Itoa(port), "0xffff", "flowid", "1:20"},
	}
	t.Cleanup(func() { _ = exec.Command("tc", "qdisc", "del", "dev", "lo", "root").Run() })
	for _, s := range steps {
		if out, err := exec.Command("tc", s...).CombinedOutput(); err != nil {
			if os.Getenv("CI") != "true" && os.Geteuid() != 0 {
				t.Skipf("tc: %v (run as root to include this test)", err)
			}
			t.Fatalf("tc %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
}
