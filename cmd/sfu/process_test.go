package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	sig "github.com/switchboard-sfu/switchboard/signal"
)

// runAsSFU, set to 1 in the environment, makes the test binary run as the
// sfu command (TestMain).
const runAsSFU = "SWITCHBOARD_TEST_AS_SFU"

// sfuCmd is the sfu command with args, as a child process of the test.
func sfuCmd(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append([]string{runAsSFU + "=1"}, env...)
	return cmd
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// An invalid value stops the process with exit code 2 and a message that
// names it; -print-config prints the effective configuration.
func TestProcessConfig(t *testing.T) {
	out, err := sfuCmd(t, nil, "-udp-ports", "9-1").CombinedOutput()
	if exitCode(err) != 2 || !strings.Contains(string(out), "ice.udp-ports") {
		t.Errorf("bad -udp-ports: exit %d, output %q", exitCode(err), out)
	}
	out, err = sfuCmd(t, []string{"SWITCHBOARD_MODE=production"}).CombinedOutput()
	if exitCode(err) != 2 || !strings.Contains(string(out), "production mode needs join tokens") {
		t.Errorf("production without a secret: exit %d, output %q", exitCode(err), out)
	}
	out, err = sfuCmd(t, []string{"SWITCHBOARD_AUTH_SECRET=" + secret32, "SWITCHBOARD_LISTEN=:9999"},
		"-print-config", "-mode", "production").Output()
	if err != nil {
		t.Fatalf("-print-config: %v", err)
	}
	for _, want := range []string{"mode: production", `listen: :9999`, "secret: <redacted>", "participants-per-room: 50"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("-print-config output lacks %q:\n%s", want, out)
		}
	}
}

// `sfu token` mints a token that the server's Auth accepts for its room.
func TestProcessToken(t *testing.T) {
	env := []string{"SWITCHBOARD_AUTH_SECRET=" + secret32}
	out, err := sfuCmd(t, env, "token", "-room", "standup", "-identity", "alice", "-ttl", "1h", "-publish=false").Output()
	if err != nil {
		t.Fatalf("sfu token: %v", err)
	}
	auth, err := sig.NewAuth([]byte(secret32))
	if err != nil {
		t.Fatal(err)
	}
	g, perr := auth.Verify(strings.TrimSpace(string(out)), "standup")
	if perr != nil {
		t.Fatalf("minted token refused: %v", perr)
	}
	if g.Identity != "alice" || g.Publish || !g.Subscribe || g.Admin {
		t.Errorf("grant %+v", g)
	}
	if _, err := sfuCmd(t, nil, "token", "-room", "r", "-identity", "i").Output(); exitCode(err) != 2 {
		t.Errorf("token without a secret: exit %d, want 2", exitCode(err))
	}
}

// The process starts and is ready, logs JSON in production, and on SIGTERM
// drains: it reports not ready, tells the participants, refuses new joins,
// and exits 0 once they have left.
func TestProcessDrain(t *testing.T) {
	port := freePort(t, "tcp")
	base := "http://127.0.0.1:" + port
	var logs lockedBuffer
	cmd := sfuCmd(t, []string{"SWITCHBOARD_AUTH_SECRET=" + secret32},
		"-mode", "production", "-listen", "127.0.0.1:"+port, "-loopback", "-shutdown-grace", "20s")
	cmd.Stderr = &logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})

	waitUntil(t, 10*time.Second, "/readyz", func() bool { return httpStatus(base+"/readyz") == http.StatusOK })
	t.Logf("start-up to ready: %v as seen by the test (the server logs %s)", time.Since(start).Round(time.Millisecond), readyLog(t, &logs))

	auth, _ := sig.NewAuth([]byte(secret32))
	token, _ := auth.Mint(sig.Grant{Identity: "alice", Room: "r", Publish: true, Subscribe: true}, time.Minute)
	alice := dialWS(t, wsURL(base))
	alice.send(t, map[string]string{"type": "join", "room": "r", "name": "Alice", "token": token})
	alice.expect(t, "joined")

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if m := alice.expect(t, sig.TypeDraining); m["grace"] != float64(20) {
		t.Errorf("draining message %v, want grace 20", m)
	}
	if got := httpStatus(base + "/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d", got)
	}
	if got := httpStatus(base + "/healthz"); got != http.StatusOK {
		t.Errorf("/healthz while draining: %d", got)
	}
	bob := dialWS(t, wsURL(base))
	token, _ = auth.Mint(sig.Grant{Identity: "bob", Room: "r", Publish: true, Subscribe: true}, time.Minute)
	bob.send(t, map[string]string{"type": "join", "room": "r", "name": "Bob", "token": token})
	if m := bob.expect(t, "error"); m["code"] != sig.CodeShuttingDown {
		t.Errorf("join while draining: %v", m)
	}
	_ = bob.conn.CloseNow()
	select {
	case err := <-exited:
		t.Fatalf("exited while a participant was still there: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	alice.send(t, map[string]string{"type": "leave"})
	_ = alice.conn.CloseNow() // rather than wait for the server's close frame
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after the last participant left")
	}
}

// readyLog finds the "ready" line of a JSON log and returns its start-up time.
func readyLog(t *testing.T, logs *lockedBuffer) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Errorf("log line is not JSON: %s", sc.Text())
			continue
		}
		if line["msg"] == "ready" {
			return fmt.Sprintf("startup=%vs", line["startup"])
		}
	}
	t.Error("no ready line in the log")
	return "nothing"
}

func freePort(t *testing.T, network string) string {
	t.Helper()
	var addr string
	if network == "udp" {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = pc.LocalAddr().String()
		pc.Close()
	} else {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = l.Addr().String()
		l.Close()
	}
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func httpStatus(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// wsClient is a bare signaling client for tests of refusals and drains.
type wsClient struct {
	conn *websocket.Conn
}

func dialWS(t *testing.T, url string, opts ...*websocket.DialOptions) *wsClient {
	t.Helper()
	c, err := tryDialWS(url, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.conn.CloseNow() })
	return c
}

func tryDialWS(url string, opts ...*websocket.DialOptions) (*wsClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var o *websocket.DialOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	conn, _, err := websocket.Dial(ctx, url, o)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	return &wsClient{conn: conn}, nil
}

func (c *wsClient) send(t *testing.T, m any) {
	t.Helper()
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// expect returns the next message of type typ, skipping the others.
func (c *wsClient) expect(t *testing.T, typ string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := c.conn.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %q: %v", typ, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("not JSON: %s", b)
		}
		if m["type"] == typ {
			return m
		}
		if m["type"] == "error" && typ != "error" {
			t.Fatalf("waiting for %q: got %s", typ, bytes.TrimSpace(b))
		}
	}
}
