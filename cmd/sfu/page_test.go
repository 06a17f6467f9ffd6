package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/switchboard-sfu/switchboard/internal/browsertest"
	"github.com/switchboard-sfu/switchboard/internal/client"
	"github.com/switchboard-sfu/switchboard/internal/headless"
)

// findJS defines find(role, name, root): the first visible element of that
// role and accessible name, as a screen reader finds it (explicit role or
// the element's own; aria-label, else its label, else its text).
const findJS = `(() => {
  const roleOf = e => e.getAttribute('role') || ({BUTTON: 'button', SELECT: 'combobox', VIDEO: 'video', METER: 'meter'})[e.tagName] || '';
  const nameOf = e => (e.getAttribute('aria-label') || (e.labels && e.labels[0] && e.labels[0].firstChild.textContent) || e.textContent || '').trim();
  window.find = (role, name, root) => [...(root || document).querySelectorAll('*')]
    .find(e => roleOf(e) === role && nameOf(e) === name && e.getClientRects().length > 0 && !e.closest('[hidden]')) || null;
  return true; })()`

// openRoom opens one tab per name at width x height, all joining room at
// once, and returns the tabs and their participant ids.
func openRoom(ctx context.Context, t *testing.T, b *browsertest.Browser, base, room string, names []string, width, height int64) ([]*browsertest.Tab, []string) {
	t.Helper()
	tabs := make([]*browsertest.Tab, len(names))
	ids := make([]string, len(names))
	for i := range names {
		tabs[i] = b.NewTab(t, "about:blank")
		if err := tabs[i].SetViewport(ctx, width, height); err != nil {
			t.Fatal(err)
		}
	}
	for i, tab := range tabs {
		if err := tab.Eval(ctx, fmt.Sprintf(`location.assign(%q), true`, fmt.Sprintf("%s/?room=%s&name=%s", base, room, names[i])), nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, tab := range tabs {
		ids[i] = tabID(ctx, t, tab)
		if err := tab.WaitFor(ctx, findJS, nil); err != nil {
			t.Fatal(err)
		}
	}
	return tabs, ids
}

// widths waits until tab decodes every other participant's video at least
// min px wide (0: any), and returns the widths.
func widths(ctx context.Context, t *testing.T, tab *browsertest.Tab, others []string, min int, limit time.Duration) map[string]int {
	t.Helper()
	var got map[string]media
	deadline := time.Now().Add(limit)
	for {
		got = nil
		ok := tab.Eval(ctx, remoteMedia, &got) == nil
		out := map[string]int{}
		for _, id := range others {
			out[id] = got[id].Width
			if got[id].Width == 0 || got[id].Width < min {
				ok = false
			}
		}
		if ok || time.Now().After(deadline) {
			return out
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Three people on large windows: each sees the others large enough that
// the server sends them the 640 or 1280 px layer.
func TestPageWidths(t *testing.T) {
	_, base := startServer(t)
	b := browsertest.Launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tabs, ids := openRoom(ctx, t, b, base, "widths", []string{"ann", "bo", "cy"}, 1920, 1080)
	for i, tab := range tabs {
		others := slices.Delete(slices.Clone(ids), i, i+1)
		w := widths(ctx, t, tab, others, 640, 15*time.Second)
		t.Logf("1920x1080, tab %d decodes widths %v", i, w)
		for id, px := range w {
			if px < 640 {
				t.Errorf("tab %d decodes %s at %d px on a 1920x1080 window, want at least 640", i, id, px)
			}
		}
	}
	for _, tab := range tabs {
		if err := tab.SetViewport(ctx, 1280, 800); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second) // the new sizes reach the server, which switches layers at keyframes
	for i, tab := range tabs {
		others := slices.Delete(slices.Clone(ids), i, i+1)
		t.Logf("1280x800, tab %d decodes widths %v", i, widths(ctx, t, tab, others, 0, 5*time.Second))
	}
}

// Opening a room's link without a name shows the pre-join screen: a camera
// preview, a microphone meter and the device pickers. Join starts the call
// with sound at once.
func TestPagePrejoin(t *testing.T) {
	_, base := startServer(t)
	b := browsertest.Launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	_, ids := openRoom(ctx, t, b, base, "prejoin", []string{"host"}, 1280, 800)
	tab := b.NewTab(t, base+"/?room=prejoin&prejoin=1")
	if err := tab.WaitFor(ctx, findJS, nil); err != nil {
		t.Fatal(err)
	}
	var ui struct {
		Title      string `json:"title"`
		Cameras    int    `json:"cameras"`
		Mics       int    `json:"mics"`
		Meter      bool   `json:"meter"`
		Join       bool   `json:"join"`
		InCall     bool   `json:"inCall"`
		PreviewW   int    `json:"previewW"`
		RememberMe string `json:"name"`
	}
	if err := tab.WaitFor(ctx, `(() => {
  const cam = find('combobox', 'Camera'), mic = find('combobox', 'Microphone'), v = find('video', 'Your camera preview');
  if (!cam || !mic || !v || !v.videoWidth || !cam.options.length || !(find('meter', 'Microphone level')?.value > 0)) return null;
  return {title: document.getElementById('join-title').textContent, cameras: cam.options.length, mics: mic.options.length,
    meter: !!find('meter', 'Microphone level') && find('meter', 'Microphone level').value > 0, join: !!find('button', 'Join'), inCall: !!window.switchboard.you, previewW: v.videoWidth}; })()`, &ui); err != nil {
		t.Fatalf("no pre-join screen with a preview and pickers: %v\nconsole: %s", err, tab.Console())
	}
	t.Logf("pre-join screen: %+v", ui)
	if ui.Title != "Join prejoin" || !ui.Join || ui.InCall || !ui.Meter {
		t.Errorf("pre-join screen %+v, want the title 'Join prejoin', a moving microphone meter, a Join button, and not in the call yet", ui)
	}
	var clicked float64
	if err := tab.Eval(ctx, `(() => { document.querySelector('#join-form input[name=name]').value = 'guest';
  const at = performance.now(); find('button', 'Join').click(); return at; })()`, &clicked); err != nil {
		t.Fatal(err)
	}
	var since float64
	if err := tab.WaitFor(ctx, `window.switchboard.firstRemoteFrameAt && window.switchboard.firstRemoteFrameAt - `+fmt.Sprint(clicked), &since); err != nil {
		t.Fatalf("no remote frame after Join: %v\nconsole: %s", err, tab.Console())
	}
	t.Logf("first remote frame %.0f ms after the Join click", since)
	waitUntil(t, 10*time.Second, "sound from the host", func() bool {
		var got map[string]media
		return tab.Eval(ctx, remoteMedia, &got) == nil && got[ids[0]].Energy > 0
	})
	var playing struct {
		Paused, Muted, Button bool
		URL                   string
	}
	if err := tab.Eval(ctx, fmt.Sprintf(`(() => { const v = document.querySelector('#grid .tile[data-participant=%q] video');
  return {Paused: v.paused, Muted: v.muted, Button: !!find('button', 'Click to enable audio'), URL: location.search}; })()`, ids[0]), &playing); err != nil {
		t.Fatal(err)
	}
	if playing.Paused || playing.Muted || playing.Button {
		t.Errorf("after Join the host's tile is %+v, want playing with sound and no enable-audio button", playing)
	}
	if want := "?room=prejoin&prejoin=1"; playing.URL != want {
		t.Errorf("address bar %q after joining, want %q (no name)", playing.URL, want)
	}
}

// Muting the microphone shows the muted icon on that person's tile for the
// others; turning the camera off shows their initials instead of video.
func TestPageMute(t *testing.T) {
	_, base := startServer(t)
	b := browsertest.Launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	tabs, ids := openRoom(ctx, t, b, base, "mute", []string{"Ada%20Lovelace", "bob"}, 1280, 800)
	widths(ctx, t, tabs[1], ids[:1], 0, 10*time.Second)
	tile := fmt.Sprintf(`document.querySelector('#grid .tile[data-participant=%q]')`, ids[0])
	for _, step := range []struct{ click, shows string }{
		{"Mute microphone", `!!find('img', 'Microphone muted', ` + tile + `)`},
		{"Turn camera off", `(() => { const p = ` + tile + `.querySelector('.placeholder'); return !p.hidden && p.textContent === 'AL'; })()`},
		{"Unmute microphone", `!find('img', 'Microphone muted', ` + tile + `)`},
	} {
		if err := tabs[0].WaitFor(ctx, fmt.Sprintf(`(() => { const b = find('button', %q); return b && (b.click(), true); })()`, step.click), nil); err != nil {
			t.Fatalf("no %q button: %v", step.click, err)
		}
		start := time.Now()
		if err := tabs[1].WaitFor(ctx, step.shows, nil); err != nil {
			t.Fatalf("after %q the other tab does not show it: %v\nconsole: %s", step.click, err, tabs[1].Console())
		}
		t.Logf("%q shown to the other tab after %v", step.click, time.Since(start).Round(time.Millisecond))
	}
}

// layoutJS measures the grid: tiles outside it, and the share of its area
// that tiles cover.
const layoutJS = `(() => {
  const g = document.getElementById('grid').getBoundingClientRect();
  const bar = document.getElementById('controls').getBoundingClientRect();
  let area = 0, outside = 0, n = 0;
  for (const el of document.querySelectorAll('#grid .tile')) {
    if (el.hidden) continue;
    const r = el.getBoundingClientRect();
    n++;
    area += r.width * r.height;
    if (r.left < g.left - 1 || r.top < g.top - 1 || r.right > g.right + 1 || r.bottom > g.bottom + 1 || r.bottom > bar.top + 1) outside++;
  }
  return {tiles: n, outside, share: area / (g.width * g.height)}; })()`

type layoutStats struct {
	Tiles   int     `json:"tiles"`
	Outside int     `json:"outside"`
	Share   float64 `json:"share"`
}

// With 1, 3 and 6 people (the others Pion viewers, which show as initials)
// every tile lies inside the grid, which they cover for the most part, on
// a desktop and a phone window; 20 people take two pages.
func TestPageLayout(t *testing.T) {
	_, base := startServer(t)
	b := browsertest.Launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	api, err := client.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	tabs, _ := openRoom(ctx, t, b, base, "layout", []string{"me"}, 1280, 800)
	tab := tabs[0]
	people := 1
	for _, n := range []int{1, 3, 6, 20} {
		for ; people < n; people++ {
			c, err := client.Join(ctx, api, wsURL(base), "layout", fmt.Sprintf("viewer %d", people), client.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
		}
		for _, size := range [][2]int64{{1280, 800}, {390, 844}} {
			if err := tab.SetViewport(ctx, size[0], size[1]); err != nil {
				t.Fatal(err)
			}
			want := min(n, 16)
			var got layoutStats
			if err := tab.WaitFor(ctx, fmt.Sprintf(`(async () => { await new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)));
  const s = %s; return s.tiles === %d && s; })()`, layoutJS, want), &got); err != nil {
				t.Fatalf("%d people at %dx%d: %v", n, size[0], size[1], err)
			}
			t.Logf("%d people at %dx%d: %+v", n, size[0], size[1], got)
			if got.Outside > 0 || (n <= 6 && got.Share < 0.5) {
				t.Errorf("%d people at %dx%d: %d tiles outside the grid, %.0f%% of it covered; want none outside and over 50%%",
					n, size[0], size[1], got.Outside, 100*got.Share)
			}
		}
	}
	// Page 2 of 20: the other 4 tiles, and the Previous/Next controls.
	var page2 layoutStats
	if err := tab.WaitFor(ctx, `(() => { const n = find('button', 'Next'); return n && (n.click(), true); })()`, nil); err != nil {
		t.Fatal(err)
	}
	if err := tab.WaitFor(ctx, `(() => { const s = `+layoutJS+`; return s.tiles === 4 && s; })()`, &page2); err != nil {
		t.Fatalf("page 2 of 20 people: %v", err)
	}
}

// TestScreenshots renders the page for the documentation into the folder
// $SWITCHBOARD_SCREENSHOTS (make screenshots); skipped without it.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("SWITCHBOARD_SCREENSHOTS")
	if dir == "" {
		t.Skip("set SWITCHBOARD_SCREENSHOTS to a folder to render the screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, ok := headless.Binary()
	if !ok {
		t.Skip("no Chromium")
	}
	_, base := startServer(t)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), headless.Options(bin, t.TempDir(), 0)...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil {
		t.Fatal(err)
	}
	open := func(url string, w, h int64) context.Context {
		tab, _ := chromedp.NewContext(browser)
		if err := chromedp.Do(tab, chromedp.EmulateViewport(w, h), chromedp.Navigate(url)); err != nil {
			t.Fatal(err)
		}
		return tab
	}
	eval := func(tab context.Context, js string) {
		if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](js, func(p *runtime.EvaluateParams) {
			p.UserGesture = new(true)
			p.AwaitPromise = new(true)
		})); err != nil {
			t.Fatalf("%s: %v", js, err)
		}
	}
	wait := func(tab context.Context, js string) {
		ctx, cancel := context.WithTimeout(tab, 20*time.Second)
		defer cancel()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
			t.Fatalf("waiting for %s: %v", js, err)
		}
	}
	shot := func(tab context.Context, name string) {
		time.Sleep(1500 * time.Millisecond) // the layout's transitions, the speaking highlight
		png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s.png (%d bytes)", name, len(png))
	}

	pre := open(base+"/?room=standup&prejoin=1", 1920, 1080)
	wait(pre, `document.getElementById('preview').videoWidth > 0 && document.getElementById('pick-camera').options.length > 0`)
	eval(pre, `document.querySelector('#join-form input[name=name]').value = 'Ada Lovelace', true`)
	shot(pre, "prejoin")

	names := []string{"Grace%20Hopper", "Alan%20Turing", "Katherine%20Johnson"}
	var others []context.Context
	for _, n := range names {
		others = append(others, open(base+"/?room=standup&name="+n, 800, 600))
	}
	eval(pre, `document.getElementById('join-form').requestSubmit(), true`)
	wait(pre, `document.querySelectorAll('#grid .tile[data-participant] video').length === 3 &&
  [...document.querySelectorAll('#grid .tile[data-participant] video')].every(v => v.videoWidth > 0)`)
	// The server may pause videos while its bandwidth estimate ramps up.
	wait(pre, `!document.querySelector('#grid .tile.paused')`)
	shot(pre, "call-4")

	eval(others[1], `document.getElementById('mute').click(), document.getElementById('camera').click(), true`)
	time.Sleep(time.Second)
	eval(pre, `document.getElementById('view').click(), true`)
	shot(pre, "speaker-view")
	eval(pre, `document.getElementById('view').click(), true`)
	shot(pre, "muted")

	phone := open(base+"/?room=standup&name=Phone", 390, 844)
	wait(phone, `document.querySelectorAll('#grid .tile[data-participant] video').length === 4`)
	shot(phone, "phone")

	// The fake capture: Chromium's fake UI picks a screen by itself.
	eval(others[0], `document.getElementById('screen').click(), true`)
	wait(pre, `document.querySelectorAll('#grid .tile.screen[data-participant] video').length === 1 &&
  document.querySelector('#grid .tile.screen[data-participant] video').videoWidth > 0`)
	shot(pre, "screen-share")

	// Reconnecting: nothing the page sends reaches the server any more, so
	// its pings go unanswered and it finds the connection dead within 5 s.
	eval(pre, `WebSocket.prototype.send = () => {}, true`)
	wait(pre, `window.switchboard.state === 'reconnecting'`)
	shot(pre, "reconnecting")
}
