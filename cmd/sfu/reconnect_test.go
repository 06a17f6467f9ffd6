package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/internal/browsertest"
	"github.com/switchboard-sfu/switchboard/internal/netlab"
	sig "github.com/switchboard-sfu/switchboard/signal"
)

// Tests of calls that survive the network (docs/protocol.md
// "Reconnecting"): a participant whose path goes dead for a while, one
// that is away longer than the server waits for it, one that moves to
// another address, a server that restarts, and the same person joining
// twice.

// A participant behind a link that goes dead for 5 s comes back by itself:
// the others never see it leave, and within 3 s of the link's return every
// tab decodes everyone again. The link stays dead past 5 s until the tab
// behind it has found its WebSocket dead (5 s of silence), so that it comes
// back through a resume.
func TestBrowserResumeAfterOutage(t *testing.T) {
	link := netlab.New(t)
	srv := startSFU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tabs := roomBehind(t, link, srv.port, "outage")
	before := waitAllDecoding(ctx, t, tabs, 20*time.Second, "before the outage", nil)
	farID := before[2].ID

	if err := link.Outage(); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	// Their tile for it must stay: polled throughout, the return included.
	sawAway := false
	keepsTile := func() {
		for i, tab := range tabs[:2] {
			var v struct {
				Tiles []string `json:"tiles"`
				Away  bool     `json:"away"`
			}
			if err := tab.Eval(ctx, fmt.Sprintf(`({tiles: window.switchboard.tiles(),
  away: !!document.querySelector('#grid .tile.reconnecting[data-participant=%q]')})`, farID), &v); err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(v.Tiles, farID) {
				t.Fatalf("tab %d dropped the tile of the participant behind the dead link %v after the outage began (tiles %v)",
					i, time.Since(cut).Round(100*time.Millisecond), v.Tiles)
			}
			sawAway = sawAway || v.Away
		}
	}
	for noticed := false; time.Since(cut) < 5*time.Second || !noticed; time.Sleep(200 * time.Millisecond) {
		keepsTile()
		if err := tabs[2].Eval(ctx, `window.switchboard.awaySince !== null`, &noticed); err != nil {
			t.Fatal(err)
		}
		if time.Since(cut) > 9*time.Second {
			t.Fatalf("the tab behind the dead link did not find its WebSocket dead within 9 s")
		}
	}
	if err := link.Restore(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitAllDecoding(ctx, t, tabs, 15*time.Second, "after the outage", keepsTile)
	took := time.Since(back)
	t.Logf("every tab decodes everyone again %.1f s after the link came back (a %v outage); the others showed it as reconnecting: %v",
		took.Seconds(), back.Sub(cut).Round(100*time.Millisecond), sawAway)
	if took > 3*time.Second {
		t.Errorf("recovery took %.1f s after the link came back, want at most 3 s", took.Seconds())
	}

	// Its media may come back before its WebSocket does.
	rctx, rcancel := context.WithDeadline(ctx, back.Add(5*time.Second))
	defer rcancel()
	if err := tabs[2].WaitFor(rctx, `window.switchboard.reconnects.resumed >= 1`, nil); err != nil {
		t.Fatalf("the participant behind the link did not resume its session within 5 s of the return: %v", err)
	}
	t.Logf("it resumed its session %.1f s after the link came back", time.Since(back).Seconds())
	if r := reconnects(ctx, t, tabs[2]); r.Rejoined > 0 {
		t.Errorf("the participant behind the link: reconnects %+v, want its session resumed, not joined again", r)
	}
}

// A participant away longer than the resume grace has lost its session: the
// others see it leave, and it joins again by itself once the link is back,
// within 5 s, and everyone decodes everyone again. It keeps its camera and
// microphone as they were: the same capture, still muted.
func TestBrowserRejoinAfterLongOutage(t *testing.T) {
	link := netlab.New(t)
	srv := startSFU(t, "-resume-grace", "5s")
	ctx, cancel := context.WithTimeout(context.Background(), 75*time.Second)
	defer cancel()
	tabs := roomBehind(t, link, srv.port, "long-outage")
	before := waitAllDecoding(ctx, t, tabs, 20*time.Second, "before the outage", nil)
	farID := before[2].ID
	// The user mutes the microphone.
	var local localMedia
	if err := tabs[2].Eval(ctx, `document.getElementById('mute').click(), `+localMediaJS, &local); err != nil {
		t.Fatal(err)
	}
	if !local.Muted || local.AudioEnabled {
		t.Fatalf("muting did not take: %+v", local)
	}

	if err := link.Outage(); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	// The server finds the socket dead within 8 s (its pings), then waits
	// the grace: the others show the participant as reconnecting, then see
	// it go. The link stays dead until they did.
	lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
	defer lcancel()
	for i, tab := range tabs[:2] {
		if err := tab.WaitFor(lctx, fmt.Sprintf(`(() => { const el = document.querySelector('#grid .tile.reconnecting[data-participant=%q]');
  return !!el && [...el.children].some(c => !c.hidden && c.textContent === 'Reconnecting…'); })()`, farID), nil); err != nil {
			t.Fatalf("tab %d never showed the participant behind the dead link as reconnecting: %v", i, err)
		}
	}
	t.Logf("the others show it as reconnecting %.1f s into the outage", time.Since(cut).Seconds())
	for i, tab := range tabs[:2] {
		if err := tab.WaitFor(lctx, fmt.Sprintf(`!window.switchboard.tiles().includes(%q)`, farID), nil); err != nil {
			t.Fatalf("tab %d kept the tile of a participant away past the grace: %v", i, err)
		}
	}
	t.Logf("the others dropped its tile %.1f s into the outage", time.Since(cut).Seconds())
	if err := link.Restore(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()

	rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
	defer rcancel()
	if err := tabs[2].WaitFor(rctx, fmt.Sprintf(`window.switchboard.reconnects.rejoined >= 1 && window.switchboard.you && window.switchboard.you.id !== %q`, farID), nil); err != nil {
		t.Fatalf("the participant behind the link did not join again: %v\nconsole: %s", err, tabs[2].Console())
	}
	rejoined := time.Since(back)
	after := waitAllDecoding(ctx, t, tabs, 15*time.Second, "after the rejoin", nil)
	took := time.Since(back)
	t.Logf("it joined again %.1f s after the link came back (a %v outage), and every tab decodes everyone %.1f s after",
		rejoined.Seconds(), back.Sub(cut).Round(100*time.Millisecond), took.Seconds())
	if rejoined > 5*time.Second {
		t.Errorf("it joined again %.1f s after the link came back, want at most 5 s", rejoined.Seconds())
	}
	// Once each: the new session only.
	for i, v := range after {
		if n := len(v.Tiles); n != 2 {
			t.Errorf("tab %d shows %d tiles (%v), want the 2 others", i, n, v.Tiles)
		}
	}
	var now localMedia
	if err := tabs[2].Eval(ctx, localMediaJS, &now); err != nil {
		t.Fatal(err)
	}
	if now != local {
		t.Errorf("after the rejoin the local media is %+v, want %+v as before", now, local)
	}
}

// localMedia is the tab's own camera and microphone: the capture shown in
// the preview, whether the microphone is on, and what the mute button says.
type localMedia struct {
	Stream       string `json:"stream"`
	AudioEnabled bool   `json:"audioEnabled"`
	Muted        bool   `json:"muted"`
}

const localMediaJS = `(() => { const s = document.getElementById('local').srcObject;
  return {stream: s ? s.id : '', audioEnabled: !!s && s.getAudioTracks().some(t => t.enabled),
    muted: document.getElementById('mute').getAttribute('aria-pressed') === 'true'}; })()`

// A participant whose device moves to another address (another network)
// keeps its call: its WebSocket resumes from the new address and both of its
// media connections come back through ICE restarts.
func TestBrowserNewAddress(t *testing.T) {
	link := netlab.New(t)
	srv := startSFU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tabs := roomBehind(t, link, srv.port, "move")
	before := waitAllDecoding(ctx, t, tabs, 20*time.Second, "before the move", nil)
	restarts := scrapeMetrics(t, srv.port)["switchboard_ice_restarts_total"]

	if err := link.Readdress(); err != nil {
		t.Fatal(err)
	}
	moved := time.Now()
	waitAllDecoding(ctx, t, tabs, 20*time.Second, "after the move", func() {
		for i, tab := range tabs[:2] {
			var tiles []string
			if err := tab.Eval(ctx, `window.switchboard.tiles()`, &tiles); err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(tiles, before[2].ID) {
				t.Fatalf("tab %d dropped the tile of the participant that moved (tiles %v)", i, tiles)
			}
		}
	})
	took := time.Since(moved)
	r := reconnects(ctx, t, tabs[2])
	restarts = scrapeMetrics(t, srv.port)["switchboard_ice_restarts_total"] - restarts
	t.Logf("every tab decodes everyone %.1f s after the move; the participant that moved: reconnects %+v, %v subscriber ICE restarts",
		took.Seconds(), r, restarts)
	if r.Rejoined > 0 {
		t.Errorf("the participant that moved joined again (%+v) instead of keeping its session", r)
	}
	if restarts < 1 {
		t.Errorf("no subscriber ICE restart")
	}
	if took > 10*time.Second {
		t.Errorf("the call came back %.1f s after the move, want at most 10 s", took.Seconds())
	}
}

// A server restarted while a call runs: gracefully (SIGTERM: it drains,
// then closes the calls), then by a crash (SIGKILL) and a supervisor that
// starts it again 3 s later. Every tab says meanwhile that it is
// reconnecting, not that something failed, then joins again by itself and
// decodes everyone within 10 s of the server being ready.
func TestBrowserServerRestart(t *testing.T) {
	srv := startSFU(t, "-shutdown-grace", "2s")
	ctx, cancel := context.WithTimeout(context.Background(), 75*time.Second)
	defer cancel()
	b := browsertest.Launch(t)
	var tabs []*browsertest.Tab
	for i := range 3 {
		tabs = append(tabs, b.NewTab(t, fmt.Sprintf("http://127.0.0.1:%s/?room=restart&name=tab%d", srv.port, i)))
	}
	waitAllDecoding(ctx, t, tabs, 20*time.Second, "before the restarts", nil)
	noErrors := func(what string) {
		for i, tab := range tabs {
			var errs []string
			if err := tab.Eval(ctx, `window.switchboard.errors`, &errs); err != nil {
				t.Fatal(err)
			}
			if len(errs) > 0 {
				t.Errorf("tab %d shows errors %s: %q", i, what, errs)
			}
		}
	}
	showsAll := func(what, js string) {
		for i, tab := range tabs {
			if err := tab.WaitFor(ctx, js, nil); err != nil {
				t.Fatalf("tab %d does not show %s: %v", i, what, err)
			}
		}
	}

	// Graceful: the tabs learn that the server is going, keep their call
	// until it ends it, then wait for it to come back.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	showsAll("that the server is restarting", statusShows("The server is restarting"))
	srv.wait()
	stopped := time.Now()
	showsAll("that it is reconnecting", statusShows("Reconnecting…")+` && window.switchboard.state === 'reconnecting'`)
	noErrors("while the server restarts")
	srv.start()
	ready := time.Now()
	waitAllDecoding(ctx, t, tabs, 20*time.Second, "after the graceful restart", nil)
	graceful := time.Since(ready)

	// A crash, and a start 3 s later.
	srv.cmd.Process.Kill()
	srv.wait()
	killed := time.Now()
	showsAll("that it is reconnecting", statusShows("Reconnecting…")+` && window.switchboard.state === 'reconnecting'`)
	time.Sleep(3*time.Second - time.Since(killed))
	noErrors("while the server is down")
	srv.start()
	readyAgain := time.Now()
	waitAllDecoding(ctx, t, tabs, 20*time.Second, "after the crash", nil)
	crash := time.Since(readyAgain)

	t.Logf("every tab decodes everyone %.1f s after the server was ready again, after a drain (down %.1f s), and %.1f s after a crash (down %.1f s)",
		graceful.Seconds(), ready.Sub(stopped).Seconds(), crash.Seconds(), readyAgain.Sub(killed).Seconds())
	for _, took := range []time.Duration{graceful, crash} {
		if took > 10*time.Second {
			t.Errorf("every tab decoded everyone %.1f s after the server was ready, want at most 10 s", took.Seconds())
		}
	}
	for i, tab := range tabs {
		if r := reconnects(ctx, t, tab); r.Rejoined != 2 {
			t.Errorf("tab %d: reconnects %+v, want 2 rejoins", i, r)
		}
	}
	noErrors("after the restarts")
}

// The same token opened in a second tab takes the call over: the first tab
// says so and stays out, and the others see that person once.
func TestBrowserSameIdentityTwice(t *testing.T) {
	_, base := startServerWith(t, func(c *Config) { c.Auth.Secret = secret32 })
	b := browsertest.Launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	auth, _ := sig.NewAuth([]byte(secret32))
	joinLink := func(identity string) string {
		tok, err := auth.Mint(sig.Grant{Identity: identity, Room: "twice", Publish: true, Subscribe: true}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return base + "/?" + url.Values{"room": {"twice"}, "name": {identity}, "token": {tok}}.Encode()
	}
	alice := joinLink("alice")
	first := b.NewTab(t, alice)
	firstID := tabID(ctx, t, first)
	observer := b.NewTab(t, joinLink("bob"))
	tabID(ctx, t, observer)
	if err := observer.WaitFor(ctx, fmt.Sprintf(`window.switchboard.tiles().includes(%q)`, firstID), nil); err != nil {
		t.Fatal(err)
	}

	second := b.NewTab(t, alice)
	secondID := tabID(ctx, t, second)
	if err := first.WaitFor(ctx, statusShows("You joined this call from another tab or window."), nil); err != nil {
		t.Fatalf("the first tab does not say that the call moved: %v\nconsole: %s", err, first.Console())
	}
	var tiles []string
	if err := observer.WaitFor(ctx, fmt.Sprintf(`(() => { const t = window.switchboard.tiles();
  return t.length === 1 && t[0] === %q && Object.keys(window.switchboard.participants).length === 1 && t; })()`, secondID), &tiles); err != nil {
		t.Fatalf("the observer does not show alice once, as the second tab: %v", err)
	}
	// The first tab stays out: a reconnect would take the call back from the
	// second within a second; give it two.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		var out bool
		var id string
		if err := first.Eval(ctx, `!window.switchboard.you && !document.getElementById('join-form').hidden && window.switchboard.state === 'closed'`, &out); err != nil {
			t.Fatal(err)
		}
		if err := second.Eval(ctx, `window.switchboard.you && window.switchboard.you.id`, &id); err != nil {
			t.Fatal(err)
		}
		if err := observer.Eval(ctx, `window.switchboard.tiles()`, &tiles); err != nil {
			t.Fatal(err)
		}
		if !out || id != secondID || !slices.Equal(tiles, []string{secondID}) {
			t.Fatalf("after the takeover: first tab out of the call %v, second tab's id %q (want %q), observer's tiles %v",
				out, id, secondID, tiles)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// statusShows: the page tells its user text, as a screen reader finds it
// (a visible element of role status).
func statusShows(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('[role=status]')].some(e => !e.hidden && e.textContent.includes(%q))`, text)
}

// roomBehind opens a room of three tabs: two in a browser beside the
// server, the third in a browser behind link.
func roomBehind(t *testing.T, link *netlab.Link, port, room string) []*browsertest.Tab {
	t.Helper()
	origin := fmt.Sprintf("http://%s:%s", link.HostIP, port)
	near := browsertest.Launch(t)
	far := launchBehind(t, link, origin)
	return []*browsertest.Tab{
		near.NewTab(t, fmt.Sprintf("http://127.0.0.1:%s/?room=%s&name=near0", port, room)),
		near.NewTab(t, fmt.Sprintf("http://127.0.0.1:%s/?room=%s&name=near1", port, room)),
		far.NewTab(t, fmt.Sprintf("%s/?room=%s&name=far", origin, room)),
	}
}

// callView is what one tab shows: its own id, its tiles and what each
// remote tile decodes.
type callView struct {
	ID    string           `json:"id"`
	Tiles []string         `json:"tiles"`
	Media map[string]media `json:"media"`
}

const callViewJS = `(async () => ({id: (window.switchboard.you || {}).id || '', tiles: window.switchboard.tiles(),
  media: await ` + remoteMedia + `}))()`

// waitAllDecoding waits until every tab decodes video from every other tab,
// by the ids they have now: each remote tile's framesDecoded rises above
// what it was when the wait began (or when its connection was replaced).
// each, if set, is called on every poll. It returns the last views.
func waitAllDecoding(ctx context.Context, t *testing.T, tabs []*browsertest.Tab, limit time.Duration, what string,
	each func()) []callView {
	t.Helper()
	base := map[string]int{} // "tab/participant" -> frames at the first look
	views := make([]callView, len(tabs))
	defer func() {
		if !t.Failed() {
			return
		}
		var b strings.Builder
		for i, v := range views {
			fmt.Fprintf(&b, "\n  tab %d (%s): tiles %v, media %v", i, v.ID, v.Tiles, v.Media)
		}
		for i, tab := range tabs {
			fmt.Fprintf(&b, "\n  tab %d console: %s", i, strings.Join(tab.Console(), "\n    "))
		}
		t.Logf("%s:%s", what, b.String())
	}()
	waitUntil(t, limit, "every tab to decode everyone "+what, func() bool {
		if each != nil {
			each()
		}
		for i, tab := range tabs {
			if err := tab.Eval(ctx, callViewJS, &views[i]); err != nil {
				t.Fatalf("%s: tab %d: %v", what, i, err)
			}
		}
		done := true
		for i, v := range views {
			for j, o := range views {
				if i == j {
					continue
				}
				if v.ID == "" || o.ID == "" {
					done = false
					continue
				}
				key := fmt.Sprintf("%d/%s", i, o.ID)
				frames := v.Media[o.ID].Frames
				if b, ok := base[key]; !ok || frames < b {
					base[key] = frames // a new connection counts from 0
				}
				if frames <= base[key] {
					done = false
				}
			}
		}
		return done
	})
	return views
}

type reconnectCounts struct {
	Resumed  int `json:"resumed"`
	Rejoined int `json:"rejoined"`
}

func reconnects(ctx context.Context, t *testing.T, tab *browsertest.Tab) reconnectCounts {
	t.Helper()
	var r reconnectCounts
	if err := tab.Eval(ctx, `window.switchboard.reconnects`, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// sfuProcess is the server binary as a process of its own (see
// startServerBinary), which a test can kill and start again on its port.
type sfuProcess struct {
	t    *testing.T
	bin  string
	port string
	args []string
	cmd  *exec.Cmd
	logs *lockedBuffer
}

// startSFU starts the server binary on a free port, on all interfaces, with
// loopback candidates and args, and waits until it is ready.
func startSFU(t *testing.T, args ...string) *sfuProcess {
	t.Helper()
	p := &sfuProcess{t: t, bin: os.Getenv("SWITCHBOARD_SFU_BIN"), port: freePort(t, "tcp"), args: args, logs: &lockedBuffer{}}
	if p.bin == "" {
		p.bin = builtSFU(t)
	}
	t.Cleanup(func() {
		if p.cmd != nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("server log:\n%s", p.logs.String())
		}
	})
	p.start()
	return p
}

func (p *sfuProcess) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, append([]string{"-listen", "0.0.0.0:" + p.port, "-loopback", "-log-level", "debug"}, p.args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	base := "http://127.0.0.1:" + p.port
	waitUntil(p.t, 10*time.Second, "the server to be ready", func() bool { return httpStatus(base+"/readyz") == http.StatusOK })
}

// wait waits for the server to exit (after a signal).
func (p *sfuProcess) wait() {
	err := p.cmd.Wait()
	p.cmd = nil
	fmt.Fprintf(p.logs, "---- exited: %v ----\n", err)
}
