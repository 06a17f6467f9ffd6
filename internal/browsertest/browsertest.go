// Package browsertest drives a headless Chromium from Go tests, so that the
// SFU can be tested against a real WebRTC stack with fake media devices.
package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-sfu/switchboard/internal/headless"
	"github.com/switchboard-sfu/switchboard/internal/poll"
)

const (
	startTimeout = 60 * time.Second
	closeTimeout = 10 * time.Second
	pollInterval = 100 * time.Millisecond
)

type config struct {
	binary string
	fps    int
	extra  []string
}

// Option changes how Launch starts Chromium.
type Option func(*config)

// WithFakeCameraFPS sets the frame rate of the fake camera.
func WithFakeCameraFPS(fps int) Option { return func(c *config) { c.fps = fps } }

// WithExtraFlags adds command line flags such as "--foo" or "--foo=bar". A flag
// that Launch sets already takes the new value, so this can also override.
func WithExtraFlags(flags ...string) Option {
	return func(c *config) { c.extra = append(c.extra, flags...) }
}

// WithBinary runs the Chromium at path instead of the one Binary finds.
func WithBinary(path string) Option { return func(c *config) { c.binary = path } }

// Binary reports where Chromium is. $CHROMIUM_BIN wins when set, so that a
// misconfigured CI fails instead of silently testing another browser.
func Binary() (string, bool) { return headless.Binary() }

// Browser is one Chromium process. Its tabs share the process but not their
// pages.
type Browser struct {
	ctx     context.Context // holds the chromedp browser; parent of every tab
	pid     int
	dataDir string
}

// Launch starts one headless Chromium process for the test and stops it in
// t.Cleanup. Without a Chromium the test fails when CI=true and skips
// otherwise.
func Launch(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.binary == "" {
		bin, ok := Binary()
		if !ok {
			msg := "browsertest: no Chromium found; install chromium or set CHROMIUM_BIN"
			if env := os.Getenv("CHROMIUM_BIN"); env != "" {
				msg = fmt.Sprintf("browsertest: CHROMIUM_BIN=%q is not an executable", env)
			}
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		cfg.binary = bin
	}

	dataDir := t.TempDir()
	alloc := headless.Options(cfg.binary, dataDir, cfg.fps)
	for _, f := range cfg.extra {
		name, value, hasValue := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if hasValue {
			alloc = append(alloc, chromedp.Flag(name, value))
		} else {
			alloc = append(alloc, chromedp.Flag(name, true))
		}
	}

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), alloc...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// The first Run binds the browser's life to its context, so a deadline
	// there would kill the browser later; a timer guards the start instead.
	guard := time.AfterFunc(startTimeout, cancel)
	err := chromedp.Do(ctx)
	guard.Stop()
	if err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("browsertest: starting %s: %v", cfg.binary, err)
	}
	b := &Browser{ctx: ctx, pid: chromedp.FromContext(ctx).Browser.Process().Pid, dataDir: dataDir}
	t.Cleanup(func() {
		// A graceful close lets Chromium stop its helper processes itself.
		cctx, ccancel := context.WithTimeout(ctx, closeTimeout)
		if err := chromedp.Cancel(cctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("browsertest: closing the browser: %v", err)
		}
		ccancel()
		cancel()
		cancelAlloc() // waits for the process and chromedp's goroutines
		if !killLeftovers(dataDir) {
			t.Errorf("browsertest: Chromium processes using %s survived SIGKILL", dataDir)
		}
	})
	return b
}

// killLeftovers kills the processes that still use dir as their profile, and
// reports whether they are all gone. Chromedp does this only for profiles it
// made, and a helper that outlives the browser keeps writing to t.TempDir.
func killLeftovers(dir string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		pids := profileProcs(dir)
		if len(pids) == 0 {
			return true
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return false
}

// profileProcs lists the processes started with dir as their profile, and the
// crashpad handlers that keep their database there.
// Chromium passes --user-data-dir on to its helpers, but the zygote's children
// rewrite their cmdline with spaces instead of NULs between the arguments.
func profileProcs(dir string) []int {
	want, crashDB := "--user-data-dir="+dir, "--database="+dir+"/"
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.FieldsFunc(string(cmdline), func(r rune) bool { return r == 0 || r == ' ' })
		if slices.ContainsFunc(args, func(a string) bool { return a == want || strings.HasPrefix(a, crashDB) }) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Tab is one page target of a Browser.
type Tab struct {
	ctx     context.Context
	done    chan struct{} // closed when the console reader stops
	once    sync.Once
	closeFn func() error
	err     error

	mu      sync.Mutex
	console []string
}

// NewTab opens a new tab in b, navigates it to url and closes it in t.Cleanup.
func (b *Browser) NewTab(t testing.TB, url string) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	tab := &Tab{ctx: ctx, done: make(chan struct{})}
	tab.closeFn = func() error {
		err := chromedp.Cancel(ctx)
		cancel()
		<-tab.done
		return err
	}
	t.Cleanup(func() {
		if err := tab.Close(); err != nil {
			t.Logf("browsertest: closing the tab: %v", err)
		}
	})

	// Console creates the target, and subscribing before the navigation
	// keeps the messages of the page's first script.
	messages := chromedp.Console(ctx)
	go func() {
		defer close(tab.done)
		for m, err := range messages {
			if err != nil {
				return
			}
			tab.mu.Lock()
			tab.console = append(tab.console, m.String())
			tab.mu.Unlock()
		}
	}()
	nctx, ncancel := context.WithTimeout(ctx, startTimeout)
	defer ncancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("browsertest: opening %s: %v", url, err)
	}
	return tab
}

// Close closes the tab. It is safe to call more than once.
func (tab *Tab) Close() error {
	tab.once.Do(func() { tab.err = tab.closeFn() })
	return tab.err
}

// Console returns the console messages and uncaught exceptions of the tab so
// far, as "type: text".
func (tab *Tab) Console() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]string(nil), tab.console...)
}

// Eval evaluates expr in the page, awaits it if it is a promise, and decodes
// its JSON value into out (undefined decodes as null). out may be nil.
func (tab *Tab) Eval(ctx context.Context, expr string, out any) error {
	// Chromedp needs its own context for the tab; ctx only limits the call.
	rctx, cancel := context.WithCancel(tab.ctx)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	raw, err := chromedp.Run(rctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("evaluating %q: %w", expr, ctx.Err())
		}
		return fmt.Errorf("evaluating %q: %w", expr, err)
	}
	if out == nil {
		return nil
	}
	if len(raw) == 0 {
		raw = []byte("null")
	}
	return json.Unmarshal(raw, out)
}

// WaitFor evaluates expr every 100 ms until its value is truthy, and decodes
// that value into out. Errors while polling, such as a name that the page has
// not defined yet, count as falsy. When ctx ends, the error tells the last
// value or error.
func (tab *Tab) WaitFor(ctx context.Context, expr string, out any) error {
	return poll.Truthy(ctx, tab.Eval, func() bool { return tab.ctx.Err() != nil }, pollInterval, expr, out)
}

// SetViewport resizes the tab's page to width x height CSS pixels, as a
// bigger window would (headless pages are about 780x490 by default).
func (tab *Tab) SetViewport(ctx context.Context, width, height int64) error {
	rctx, cancel := context.WithCancel(tab.ctx)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	return chromedp.Do(rctx, chromedp.EmulateViewport(width, height))
}
