// Package firefoxtest drives a headless Firefox (Debian's firefox-esr) from
// Go tests over WebDriver BiDi, with a fake camera and microphone, so that
// the SFU is tested against Firefox's WebRTC stack as well as Chromium's.
// Its Tab has browsertest.Tab's Eval and WaitFor, so a test's page scripts
// run in either browser.
package firefoxtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/switchboard-sfu/switchboard/internal/poll"
)

const (
	startTimeout = 60 * time.Second
	pollInterval = 100 * time.Millisecond
)

// prefs are the profile's preferences: fake media without a prompt,
// loopback ICE candidates with real addresses (no mDNS), autoplay with
// sound, and none of the background traffic a fresh profile starts.
var prefs = map[string]any{
	"media.navigator.streams.fake":                      true,
	"media.navigator.permission.disabled":               true,
	"media.peerconnection.ice.loopback":                 true,
	"media.peerconnection.ice.obfuscate_host_addresses": false,
	"media.autoplay.default":                            0,
	"media.autoplay.blocking_policy":                    0,
	"media.devices.insecure.enabled":                    true,
	"media.getusermedia.insecure.enabled":               true,
	"remote.active-protocols":                           1, // WebDriver BiDi only
	"browser.shell.checkDefaultBrowser":                 false,
	"browser.sessionstore.resume_from_crash":            false,
	"datareporting.policy.dataSubmissionEnabled":        false,
	"toolkit.telemetry.enabled":                         false,
	"app.update.disabledForTesting":                     true,
	"app.normandy.enabled":                              false,
	"browser.newtabpage.enabled":                        false,
	"network.captive-portal-service.enabled":            false,
	"dom.min_background_timeout_value":                  0,
	"messaging-system.rsexperimentloader.enabled":       false,
}

// Binary reports where Firefox is; $FIREFOX_BIN wins when set.
func Binary() (string, bool) {
	if p := os.Getenv("FIREFOX_BIN"); p != "" {
		p, err := exec.LookPath(p)
		return p, err == nil
	}
	for _, name := range []string{"firefox-esr", "firefox"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// Browser is one Firefox process and its BiDi session.
type Browser struct {
	cmd  *exec.Cmd
	conn *websocket.Conn
	ctx  context.Context // the session's; ends when the browser is closed
	stop context.CancelFunc

	mu      sync.Mutex
	nextID  int
	waiting map[int]chan reply
	console map[string][]string // by browsing context
	writeMu sync.Mutex
}

type reply struct {
	Type    string          `json:"type"`
	ID      int             `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

var listening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// Launch starts a headless Firefox for the test and stops it in t.Cleanup.
// Without a Firefox the test fails when CI=true and skips otherwise.
func Launch(t testing.TB) *Browser {
	t.Helper()
	bin, ok := Binary()
	if !ok {
		msg := "firefoxtest: no Firefox found; install firefox-esr or set FIREFOX_BIN"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	routable(t)
	profile := t.TempDir()
	var userJS strings.Builder
	for k, v := range prefs {
		b, _ := json.Marshal(v)
		fmt.Fprintf(&userJS, "user_pref(%q, %s);\n", k, b)
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(userJS.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-remote", "--profile", profile, "--remote-debugging-port", "0", "about:blank")
	cmd.Env = append(os.Environ(), "HOME="+profile, "MOZ_CRASHREPORTER_DISABLE=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("firefoxtest: starting %s: %v", bin, err)
	}
	b := &Browser{cmd: cmd, waiting: map[int]chan reply{}, console: map[string][]string{}}
	t.Cleanup(b.close)

	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				url <- m[1]
			}
		}
	}()
	var wsURL string
	select {
	case wsURL = <-url:
	case <-time.After(startTimeout):
		t.Fatalf("firefoxtest: %s did not start WebDriver BiDi within %v", bin, startTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	b.conn, _, err = websocket.Dial(ctx, strings.TrimSuffix(wsURL, "/")+"/session", nil)
	if err != nil {
		t.Fatalf("firefoxtest: connecting to %s: %v", wsURL, err)
	}
	b.conn.SetReadLimit(16 << 20)
	b.ctx, b.stop = context.WithCancel(context.Background())
	go b.readLoop()
	if _, err := b.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}); err != nil {
		t.Fatalf("firefoxtest: session.new: %v", err)
	}
	if _, err := b.call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}); err != nil {
		t.Fatalf("firefoxtest: session.subscribe: %v", err)
	}
	return b
}

func (b *Browser) close() {
	if b.stop != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = b.call(ctx, "browser.close", map[string]any{})
		cancel()
		b.stop()
		_ = b.conn.CloseNow()
	}
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	// Content processes share the process group.
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

func (b *Browser) readLoop() {
	for {
		_, data, err := b.conn.Read(b.ctx)
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.waiting {
				ch <- reply{Type: "error", Error: "connection closed", Message: err.Error()}
				delete(b.waiting, id)
			}
			b.mu.Unlock()
			return
		}
		var r reply
		if json.Unmarshal(data, &r) != nil {
			continue
		}
		if r.Type == "event" {
			b.event(r)
			continue
		}
		b.mu.Lock()
		ch := b.waiting[r.ID]
		delete(b.waiting, r.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

func (b *Browser) event(r reply) {
	if r.Method != "log.entryAdded" {
		return
	}
	var e struct {
		Level  string `json:"level"`
		Text   string `json:"text"`
		Source struct {
			Context string `json:"context"`
		} `json:"source"`
	}
	if json.Unmarshal(r.Params, &e) == nil {
		b.mu.Lock()
		b.console[e.Source.Context] = append(b.console[e.Source.Context], e.Level+": "+e.Text)
		b.mu.Unlock()
	}
}

// call sends one BiDi command and returns its result.
func (b *Browser) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan reply, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	b.writeMu.Lock()
	err = b.conn.Write(ctx, websocket.MessageText, msg)
	b.writeMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.Type == "error" {
			return nil, fmt.Errorf("%s: %s: %s", method, r.Error, r.Message)
		}
		return r.Result, nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.waiting, id)
		b.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// Tab is one browsing context of a Browser.
type Tab struct {
	b  *Browser
	id string
}

// NewTab opens a tab, navigates it to url (waiting for the page to load),
// and closes it in t.Cleanup.
func (b *Browser) NewTab(t testing.TB, url string) *Tab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	raw, err := b.call(ctx, "browsingContext.create", map[string]any{"type": "tab"})
	if err != nil {
		t.Fatalf("firefoxtest: %v", err)
	}
	var created struct {
		Context string `json:"context"`
	}
	if err := json.Unmarshal(raw, &created); err != nil {
		t.Fatal(err)
	}
	tab := &Tab{b: b, id: created.Context}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_, _ = b.call(cctx, "browsingContext.close", map[string]any{"context": tab.id})
	})
	if _, err := b.call(ctx, "browsingContext.navigate", map[string]any{"context": tab.id, "url": url, "wait": "complete"}); err != nil {
		t.Fatalf("firefoxtest: opening %s: %v", url, err)
	}
	return tab
}

// Console returns the tab's console messages so far, as "level: text".
func (tab *Tab) Console() []string {
	tab.b.mu.Lock()
	defer tab.b.mu.Unlock()
	return append([]string(nil), tab.b.console[tab.id]...)
}

// Eval evaluates expr in the page, awaits it if it is a promise, and decodes
// its JSON value into out (undefined decodes as null). out may be nil.
func (tab *Tab) Eval(ctx context.Context, expr string, out any) error {
	// JSON crosses as a string, rather than as BiDi's typed remote values.
	wrapped := "(async () => { const v = await (\n" + expr + "\n); return v === undefined ? 'null' : JSON.stringify(v); })()"
	raw, err := tab.b.call(ctx, "script.evaluate", map[string]any{
		"expression": wrapped, "target": map[string]any{"context": tab.id}, "awaitPromise": true})
	if err != nil {
		return fmt.Errorf("evaluating %q: %w", expr, err)
	}
	var r struct {
		Type   string `json:"type"`
		Result struct {
			Type  string `json:"type"`
			Value any    `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	if r.Type == "exception" {
		return fmt.Errorf("evaluating %q: %s", expr, r.ExceptionDetails.Text)
	}
	s, ok := r.Result.Value.(string)
	if !ok {
		return fmt.Errorf("evaluating %q: got a %s", expr, r.Result.Type)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal([]byte(s), out)
}

// WaitFor evaluates expr every 100 ms until its value is truthy, and decodes
// that value into out; errors while polling count as falsy.
func (tab *Tab) WaitFor(ctx context.Context, expr string, out any) error {
	return poll.Truthy(ctx, tab.Eval, func() bool { return tab.b.ctx.Err() != nil }, pollInterval, expr, out)
}

// SetViewport resizes the tab's page to width x height CSS pixels.
func (tab *Tab) SetViewport(ctx context.Context, width, height int) error {
	_, err := tab.b.call(ctx, "browsingContext.setViewport", map[string]any{
		"context": tab.id, "viewport": map[string]int{"width": width, "height": height}})
	return err
}

// routable gives a network namespace that has only loopback (the tests'
// sandbox) an address of its own and a default route. Firefox gathers no
// ICE candidates there otherwise: not on loopback, whatever
// media.peerconnection.ice.loopback says, and none at all without a
// default route. A veth pair whose far end has no address keeps every
// packet inside the namespace. Elsewhere (a host with a network) it does
// nothing.
func routable(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	out, err := exec.Command("ip", "-4", "route", "show", "default").Output()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		return
	}
	name := fmt.Sprintf("sbfx%d", os.Getpid()%100000)
	steps := [][]string{
		{"ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"},
		{"ip", "addr", "add", Address + "/30", "dev", name},
		{"ip", "link", "set", name, "up"},
		{"ip", "link", "set", name + "p", "up"},
		{"ip", "route", "add", "default", "via", gateway},
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", name).Run() })
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("firefoxtest: %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
}

// Address is this namespace's address that routable adds for Firefox (the
// server gathers candidates on it too); gateway is the route's next hop,
// which does not exist.
const (
	Address = "10.213.251.1"
	gateway = "10.213.251.2"
)
