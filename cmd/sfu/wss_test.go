package main

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-sfu/switchboard/internal/testcert"
	sig "github.com/switchboard-sfu/switchboard/signal"
)

// The server configured for a public host: HTTPS and WSS from certificate
// files, join tokens, an origin allow-list and limits, all from Config.
func TestWSS(t *testing.T) {
	cert := testcert.New(t)
	_, base := startServerWith(t, func(c *Config) {
		c.Mode = production
		c.TLS.Cert, c.TLS.Key = cert.CertFile, cert.KeyFile
		c.Auth.Secret = secret32
		c.HTTP.AllowedOrigins = []string{"app.example.com"}
		c.Limits.ParticipantsPerRoom = 1
	})
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("base URL %s", base)
	}
	trusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool}}}
	wss := func(origin string) (*wsClient, error) {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		return tryDialWS(wsURL(base), &websocket.DialOptions{HTTPClient: trusting, HTTPHeader: h})
	}

	for _, path := range []string{"/healthz", "/readyz", "/"} {
		resp, err := trusting.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s over HTTPS: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	// Plain HTTP on the TLS port gets nowhere, and an unknown certificate is refused.
	if got := httpStatus("http" + strings.TrimPrefix(base, "https") + "/healthz"); got == http.StatusOK {
		t.Error("plain HTTP answered on the TLS port")
	}
	if _, err := tryDialWS(wsURL(base)); err == nil {
		t.Error("WSS with an unverified certificate connected")
	}

	auth, _ := sig.NewAuth([]byte(secret32))
	token := func(room, id string) string {
		tok, err := auth.Mint(sig.Grant{Identity: id, Room: room, Publish: true, Subscribe: true}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	a, err := wss("https://app.example.com")
	if err != nil {
		t.Fatalf("WSS from an allowed origin: %v", err)
	}
	t.Cleanup(func() { _ = a.conn.CloseNow() })
	a.send(t, map[string]string{"type": "join", "room": "r", "name": "A", "token": token("r", "alice")})
	if m := a.expect(t, sig.TypeJoined); m["you"].(map[string]any)["name"] != "alice" {
		t.Errorf("joined %v", m)
	}

	if _, err := wss("https://evil.example.net"); err == nil {
		t.Error("WSS from a foreign origin connected")
	}
	b, err := wss("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.conn.CloseNow() })
	b.send(t, map[string]string{"type": "join", "room": "r", "name": "B"})
	if m := b.expect(t, "error"); m["code"] != sig.CodeUnauthorized {
		t.Errorf("join without a token: %v", m)
	}
	b.send(t, map[string]string{"type": "join", "room": "r", "name": "B", "token": token("r", "bob")})
	if m := b.expect(t, "error"); m["code"] != sig.CodeRoomFull {
		t.Errorf("join over limits.participants-per-room: %v", m)
	}
}
