package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

const secret32 = "0123456789abcdef0123456789abcdef"

// A flag beats the environment, which beats the file, which beats the
// defaults; the file may also come from $SWITCHBOARD_CONFIG.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "c.yaml", `
listen: ":9000"
log: {level: warn}
ice: {udp-port: 7000, public-ip: 203.0.113.7}
limits: {participants-per-room: 10, rooms: 3}
shutdown: {grace: 5s}
`)
	env := envOf(
		"SWITCHBOARD_CONFIG", file,
		"SWITCHBOARD_LIMITS_PARTICIPANTS_PER_ROOM", "20",
		"SWITCHBOARD_ICE_UDP_PORT", "7001",
		"SWITCHBOARD_HTTP_ALLOWED_ORIGINS", "a.example, *.b.example",
	)
	c, _, err := loadConfig([]string{"-udp-port", "7002", "-loopback"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"listen (file)", c.Listen, ":9000"},
		{"log.level (file)", c.Log.Level, "warn"},
		{"ice.public-ip (file)", c.ICE.PublicIP, "203.0.113.7"},
		{"limits.rooms (file)", c.Limits.Rooms, 3},
		{"shutdown.grace (file)", c.Shutdown.Grace, 5 * time.Second},
		{"limits.participants-per-room (env over file)", c.Limits.ParticipantsPerRoom, 20},
		{"ice.udp-port (flag over env over file)", c.ICE.UDPPort, 7002},
		{"ice.loopback (bare boolean flag)", c.ICE.Loopback, true},
		{"http.allowed-origins (env list)", strings.Join(c.HTTP.AllowedOrigins, "|"), "a.example|*.b.example"},
		{"limits.connections-per-ip-per-minute (default)", c.Limits.ConnectionsPerMinute, 60},
		{"mode (default)", c.Mode, development},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.key, ch.got, ch.want)
		}
	}
	// -config on the command line wins over $SWITCHBOARD_CONFIG.
	other := writeFile(t, "d.yaml", "listen: \":9100\"\n")
	if c, _, err := loadConfig([]string{"-config", other}, env, io.Discard); err != nil || c.Listen != ":9100" {
		t.Errorf("-config: listen %q, %v", c.Listen, err)
	}
}

// The flags that scripts already use keep their meaning.
func TestConfigLegacyFlags(t *testing.T) {
	c, _, err := loadConfig([]string{"-listen", "127.0.0.1:0", "-udp-ports", "50000-50100", "-public-ip", "198.51.100.2",
		"-loopback", "-log-level", "debug", "-pprof"}, envOf(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi, _ := c.portRange()
	if c.Listen != "127.0.0.1:0" || lo != 50000 || hi != 50100 || c.ICE.PublicIP != "198.51.100.2" ||
		!c.ICE.Loopback || c.Log.Level != "debug" || !c.HTTP.Pprof {
		t.Errorf("legacy flags gave %+v", c)
	}
}

// An invalid value stops start-up with a message that names its key (and
// where it came from, for the environment and flags).
func TestConfigInvalid(t *testing.T) {
	short := writeFile(t, "short", "tooshort\n")
	cases := []struct {
		name string
		args []string
		env  []string
		file string
		want string
	}{
		{"bad mode", []string{"-mode", "prod"}, nil, "", "mode:"},
		{"bad listen", []string{"-listen", "8080"}, nil, "", "listen:"},
		{"bad level", []string{"-log-level", "loud"}, nil, "", "log.level:"},
		{"bad port range", []string{"-udp-ports", "60000-50000"}, nil, "", "ice.udp-ports:"},
		{"bad port", nil, []string{"SWITCHBOARD_ICE_UDP_PORT", "seventy"}, "", "ice.udp-port ($SWITCHBOARD_ICE_UDP_PORT)"},
		{"bad flag value", []string{"-max-participants", "many"}, nil, "", "-max-participants (limits.participants-per-room)"},
		{"both port modes", []string{"-udp-port", "7000", "-udp-ports", "50000-50100"}, nil, "", "ice.udp-port:"},
		{"bad public ip", []string{"-public-ip", "example.com"}, nil, "", "ice.public-ip:"},
		{"turn without single port", []string{"-turn", "-turn-host", "127.0.0.1"}, nil, "", "turn.enabled:"},
		{"turn without host", []string{"-turn", "-udp-port", "7000"}, nil, "", "turn.host:"},
		{"cert without key", []string{"-tls-cert", "x.pem"}, nil, "", "tls:"},
		{"missing cert", []string{"-tls-cert", "/nonexistent.pem", "-tls-key", "/nonexistent.key"}, nil, "", "tls.cert:"},
		{"short secret", nil, []string{"SWITCHBOARD_AUTH_SECRET", "short"}, "", "auth.secret:"},
		{"short secret file", []string{"-auth-secret-file", short}, nil, "", "auth.secret:"},
		{"production open", []string{"-mode", "production"}, nil, "", "auth.secret: production mode needs join tokens"},
		{"bad message size", []string{"-max-message-size", "10"}, nil, "", "limits.message-size:"},
		{"negative limit", []string{"-max-rooms", "-1"}, nil, "", "limits.rooms:"},
		{"bad duration", nil, []string{"SWITCHBOARD_SHUTDOWN_GRACE", "30"}, "", "shutdown.grace ($SWITCHBOARD_SHUTDOWN_GRACE)"},
		{"bad origin", []string{"-allowed-origins", "app.example/path"}, nil, "", "http.allowed-origins:"},
		{"bad proxy", []string{"-trusted-proxies", "10.0.0.0/33"}, nil, "", "http.trusted-proxies:"},
		{"unknown key", nil, nil, "ice:\n  udp_port: 7000\n", "field udp_port not found"},
		{"wrong type in file", nil, nil, "limits:\n  rooms: lots\n", "cannot unmarshal"},
		{"stray argument", []string{"extra"}, nil, "", `unexpected argument "extra"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"-config", writeFile(t, "c.yaml", tc.file)}, args...)
			}
			_, _, err := loadConfig(args, envOf(tc.env...), io.Discard)
			if err == nil {
				t.Fatalf("accepted")
			}
			if _, ok := err.(errUsage); !ok {
				t.Errorf("error %v is not a usage error (exit code 2)", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// Production starts with a secret, or when told to run open.
func TestConfigProduction(t *testing.T) {
	c, _, err := loadConfig([]string{"-mode", "production"}, envOf("SWITCHBOARD_AUTH_SECRET", secret32), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.logFormat() != "json" {
		t.Errorf("production logs as %s", c.logFormat())
	}
	if _, _, err := loadConfig([]string{"-mode", "production", "-auth-open"}, envOf(), io.Discard); err != nil {
		t.Errorf("auth.open refused: %v", err)
	}
	file := writeFile(t, "secret", secret32+"\n")
	if _, _, err := loadConfig([]string{"-mode", "production", "-auth-secret-file", file}, envOf(), io.Discard); err != nil {
		t.Errorf("secret file refused: %v", err)
	}
}

// The effective configuration prints as YAML that loads back to the same,
// without the secret.
func TestPrintableConfig(t *testing.T) {
	c, _, err := loadConfig([]string{"-udp-port", "7000", "-turn", "-turn-host", "turn.example.com", "-allowed-origins", "a.example"},
		envOf("SWITCHBOARD_AUTH_SECRET", secret32), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.printable()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), secret32) || !strings.Contains(string(b), "secret: <redacted>") {
		t.Errorf("printed secret:\n%s", b)
	}
	var back Config
	if err := yaml.Unmarshal(b, &back); err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, b)
	}
	back.Auth.Secret = c.Auth.Secret
	if a, b := strings.Join(back.HTTP.AllowedOrigins, ","), strings.Join(c.HTTP.AllowedOrigins, ","); a != b {
		t.Errorf("origins %q, want %q", a, b)
	}
	back.HTTP.AllowedOrigins, c.HTTP.AllowedOrigins = nil, nil
	back.HTTP.TrustedProxies, c.HTTP.TrustedProxies = nil, nil
	back.Webhooks.URLs, c.Webhooks.URLs = nil, nil
	back.Cluster.NATS, c.Cluster.NATS = nil, nil
	if !reflect.DeepEqual(back, c) {
		t.Errorf("printed config loads back as\n%+v\nwant\n%+v", back, c)
	}
}

// The example configuration in deploy/ is valid as shipped, given the
// files it names.
func TestExampleConfig(t *testing.T) {
	_, _, err := loadConfig([]string{"-config", "../../deploy/config.example.yaml",
		"-tls-cert=", "-tls-key=", "-auth-secret-file=" + writeFile(t, "secret", secret32)}, envOf(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
}

// The configuration in the Kubernetes manifest is valid too.
func TestKubernetesConfig(t *testing.T) {
	f, err := os.Open("../../deploy/kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("no ConfigMap with config.yaml: %v", err)
		}
		if doc.Kind != "ConfigMap" {
			continue
		}
		_, _, err := loadConfig([]string{"-config", writeFile(t, "c.yaml", doc.Data["config.yaml"]),
			"-tls-cert=", "-tls-key=", "-auth-secret-file=" + writeFile(t, "secret", secret32)}, envOf(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
}

// README.md documents every setting: its key, variable and flag.
func TestREADMEDocumentsSettings(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings() {
		for _, name := range []string{"`" + s.key + "`", "`" + s.env() + "`", "`-" + s.flag + "`"} {
			if s.flag == "" && strings.HasPrefix(name, "`-") {
				continue
			}
			if !strings.Contains(string(b), name) {
				t.Errorf("README.md does not mention %s", name)
			}
		}
	}
}

// The API key and the webhook secret are secrets like auth.secret: not
// printed; webhooks need a secret and http(s) URLs.
func TestAPIAndWebhookSettings(t *testing.T) {
	const key, hookSecret = "an-api-key-of-some-length", "a-webhook-secret"
	c, _, err := loadConfig([]string{"-webhook-urls", "https://app.example/hooks,http://10.0.0.1:9000/h"},
		envOf("SWITCHBOARD_API_KEY", key, "SWITCHBOARD_WEBHOOKS_SECRET", hookSecret), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := c.apiKey(); k != key || len(c.Webhooks.URLs) != 2 {
		t.Errorf("api key %q, webhooks %q", k, c.Webhooks.URLs)
	}
	b, err := c.printable()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), key) || strings.Contains(string(b), hookSecret) {
		t.Errorf("printed secrets:\n%s", b)
	}
	for _, bad := range []map[string]string{
		{"SWITCHBOARD_WEBHOOKS_URLS": "https://app.example/hooks"},
		{"SWITCHBOARD_WEBHOOKS_URLS": "ftp://app.example/", "SWITCHBOARD_WEBHOOKS_SECRET": hookSecret},
		{"SWITCHBOARD_API_KEY": "short"},
	} {
		if _, _, err := loadConfig(nil, func(k string) string { return bad[k] }, io.Discard); err == nil {
			t.Errorf("%v: loaded; want an error", bad)
		}
	}
}

// The server serves the API with api.key and counts webhooks in /metrics.
func TestServerServesAPI(t *testing.T) {
	const key = "an-api-key-of-some-length"
	_, base := startServerWith(t, func(c *Config) {
		c.API.Key = key
		c.Webhooks.URLs, c.Webhooks.Secret = []string{"http://127.0.0.1:1/hooks"}, "s"
	})
	get := func(path, auth string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := get("/api/rooms", ""); code != 401 {
		t.Errorf("without the key: %d; want 401", code)
	}
	if code, body := get("/api/rooms", key); code != 200 || !strings.Contains(body, `"rooms":[]`) {
		t.Errorf("with the key: %d %s", code, body)
	}
	if _, body := get("/metrics", ""); !strings.Contains(body, "switchboard_webhooks_dropped_total") {
		t.Error("/metrics lacks switchboard_webhooks_dropped_total")
	}
}
