package browsertest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const page = `<!doctype html>
<title>browsertest</title>
<script>
console.log("page loaded");
setTimeout(() => { window.ready = "yes"; }, 300);
</script>`

func serve(t *testing.T) string {
	// httptest listens on 127.0.0.1, which the host resolver rules exclude.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, page)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestTabs(t *testing.T) {
	url := serve(t)
	b := Launch(t, WithFakeCameraFPS(15))
	tabs := []*Tab{b.NewTab(t, url), b.NewTab(t, url)}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	for i, tab := range tabs {
		var n int
		if err := tab.Eval(ctx, "1+1", &n); err != nil || n != 2 {
			t.Errorf("tab %d: 1+1 = %d, %v; want 2", i, n, err)
		}
		var s string
		if err := tab.Eval(ctx, `new Promise(r => setTimeout(() => r("ok"), 50))`, &s); err != nil || s != "ok" {
			t.Errorf("tab %d: promise = %q, %v; want ok", i, s, err)
		}
		var ready string
		if err := tab.WaitFor(ctx, "window.ready", &ready); err != nil || ready != "yes" {
			t.Errorf("tab %d: WaitFor(window.ready) = %q, %v; want yes", i, ready, err)
		}
		var width int
		gum := `navigator.mediaDevices.getUserMedia({video: true}).then(s => s.getVideoTracks()[0].getSettings().width)`
		if err := tab.Eval(ctx, gum, &width); err != nil || width != 640 {
			t.Errorf("tab %d: camera width = %d, %v; want 640; console: %q", i, width, err, tab.Console())
		}
		if !slices.Contains(tab.Console(), "log: page loaded") {
			t.Errorf("tab %d: console = %q, want the page's log", i, tab.Console())
		}
	}

	// Separate targets have separate pages.
	if err := tabs[0].Eval(ctx, "window.mark = 1", nil); err != nil {
		t.Fatal(err)
	}
	var mark *int
	if err := tabs[1].Eval(ctx, "window.mark", &mark); err != nil || mark != nil {
		t.Errorf("second tab sees window.mark = %v, %v; want undefined", mark, err)
	}

	if err := tabs[0].Eval(ctx, "Promise.reject(new Error('boom'))", nil); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("rejected promise: err = %v, want one that says boom", err)
	}
	tabs[0].Eval(ctx, "setTimeout(() => { throw new Error('uncaught') })", nil)
	uncaught := `Uncaught Error: uncaught`
	if err := tabs[0].WaitFor(ctx, "new Promise(r => setTimeout(() => r(true), 100))", nil); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(tabs[0].Console(), func(m string) bool { return strings.Contains(m, uncaught) }) {
		t.Errorf("console = %q, want the uncaught exception", tabs[0].Console())
	}
	if err := tabs[1].Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := tabs[1].Eval(ctx, "1", nil); err == nil {
		t.Error("Eval on a closed tab succeeded")
	}
}

func TestWaitForTimeout(t *testing.T) {
	tab := Launch(t).NewTab(t, serve(t))
	ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
	defer cancel()
	err := tab.WaitFor(ctx, "window.nope || 0 // a comment", nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last value: 0") {
		t.Errorf("err = %v, want a deadline error with the last value 0", err)
	}
}

func TestNoProcessLeft(t *testing.T) {
	var b *Browser
	t.Run("browser", func(t *testing.T) {
		b = Launch(t)
		b.NewTab(t, "about:blank")
		if len(profileProcs(b.dataDir)) < 2 {
			t.Errorf("profileProcs finds %v, want the browser and its helpers", profileProcs(b.dataDir))
		}
	})
	if b == nil {
		t.Skip("no browser ran")
	}
	// The main process is reaped by chromedp, so a zombie cannot fool Kill.
	if err := syscall.Kill(b.pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Chromium %d still exists after cleanup: %v", b.pid, err)
	}
	if pids := profileProcs(b.dataDir); len(pids) != 0 {
		t.Errorf("Chromium helper processes %v left", pids)
	}
}
