package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"gopkg.in/yaml.v3"

	"github.com/switchboard-sfu/switchboard/signal"
)

// Config is the server's configuration. Each setting comes from, in
// increasing precedence: the defaults below, the YAML file given with
// -config (or $SWITCHBOARD_CONFIG), an environment variable, a flag. The
// table in settings() names them all; README.md documents them.
type Config struct {
	// Mode is "development" (the default: open without tokens, readable
	// logs) or "production" (JSON logs; refuses to start without tokens
	// unless auth.open).
	Mode   string `yaml:"mode"`
	Listen string `yaml:"listen"`
	Log    struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	TLS struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"tls"`
	HTTP struct {
		AllowedOrigins []string `yaml:"allowed-origins"`
		TrustedProxies []string `yaml:"trusted-proxies"`
		Pprof          bool     `yaml:"pprof"`
	} `yaml:"http"`
	ICE struct {
		UDPPort  int    `yaml:"udp-port"`
		UDPPorts string `yaml:"udp-ports"`
		TCPPort  int    `yaml:"tcp-port"`
		PublicIP string `yaml:"public-ip"`
		Loopback bool   `yaml:"loopback"`
	} `yaml:"ice"`
	TURN struct {
		Enabled       bool          `yaml:"enabled"`
		Host          string        `yaml:"host"`
		UDPPort       int           `yaml:"udp-port"`
		TCPPort       int           `yaml:"tcp-port"`
		TLSPort       int           `yaml:"tls-port"`
		CredentialTTL time.Duration `yaml:"credential-ttl"`
	} `yaml:"turn"`
	Auth struct {
		Secret     string `yaml:"secret"`
		SecretFile string `yaml:"secret-file"`
		Open       bool   `yaml:"open"`
	} `yaml:"auth"`
	API struct {
		Key     string `yaml:"key"`
		KeyFile string `yaml:"key-file"`
	} `yaml:"api"`
	Webhooks struct {
		URLs       []string `yaml:"urls"`
		Secret     string   `yaml:"secret"`
		SecretFile string   `yaml:"secret-file"`
	} `yaml:"webhooks"`
	Limits struct {
		Rooms                int `yaml:"rooms"`
		ParticipantsPerRoom  int `yaml:"participants-per-room"`
		ConnectionsPerMinute int `yaml:"connections-per-ip-per-minute"`
		MessagesPerSecond    int `yaml:"messages-per-second"`
		MessageSize          int `yaml:"message-size"`
	} `yaml:"limits"`
	Data struct {
		MessageSize       int `yaml:"message-size"`
		MessagesPerSecond int `yaml:"messages-per-second"`
		FileSize          int `yaml:"file-size"`
	} `yaml:"data"`
	Session struct {
		ResumeGrace time.Duration `yaml:"resume-grace"`
	} `yaml:"session"`
	Shutdown struct {
		Grace time.Duration `yaml:"grace"`
	} `yaml:"shutdown"`
	Cluster struct {
		NATS         []string `yaml:"nats"`
		NodeID       string   `yaml:"node-id"`
		AdvertiseURL string   `yaml:"advertise-url"`
		Credentials  string   `yaml:"nats-credentials"`
		CA           string   `yaml:"nats-ca"`
		Cert         string   `yaml:"nats-cert"`
		Key          string   `yaml:"nats-key"`
		Replicas     int      `yaml:"replicas"`
		RelayPort    int      `yaml:"relay-port"`
		RelayAddress string   `yaml:"relay-address"`
		MaxPerNode   int      `yaml:"max-participants-per-node-room"`
	} `yaml:"cluster"`
}

const (
	development = "development"
	production  = "production"
)

// defaults are what `make run` gets with no file, no variables, no flags.
func defaults() Config {
	var c Config
	c.Mode = development
	c.Listen = ":8080"
	c.Log.Level = "info"
	c.TURN.UDPPort = 3478
	c.TURN.TCPPort = 3478
	c.TURN.TLSPort = 5349
	c.TURN.CredentialTTL = time.Hour
	c.Limits.Rooms = 500
	c.Limits.ParticipantsPerRoom = 50
	c.Limits.ConnectionsPerMinute = 60
	c.Limits.MessagesPerSecond = 50
	c.Limits.MessageSize = signal.MaxMessageSize
	c.Data.MessageSize = 64 << 10
	c.Data.MessagesPerSecond = 50
	c.Data.FileSize = 100 << 20
	c.Session.ResumeGrace = 20 * time.Second
	c.Shutdown.Grace = 30 * time.Second
	c.Cluster.Replicas = 1
	return c
}

// setting is one configuration key, with its flag (if any) and the pointer
// into a Config that it sets.
type setting struct {
	key   string // the YAML path, e.g. "ice.udp-port"
	flag  string // "" for none
	usage string
	ptr   func(*Config) any
}

// env is the setting's environment variable: SWITCHBOARD_ICE_UDP_PORT for ice.udp-port.
func (s setting) env() string {
	return "SWITCHBOARD_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(s.key))
}

func settings() []setting {
	return []setting{
		{"mode", "mode", "development or production", func(c *Config) any { return &c.Mode }},
		{"listen", "listen", "HTTP(S) address for the web client, /ws and the health endpoints", func(c *Config) any { return &c.Listen }},
		{"log.level", "log-level", "log level: debug, info, warn, error", func(c *Config) any { return &c.Log.Level }},
		{"log.format", "log-format", "json or console (default: json in production, console in development)", func(c *Config) any { return &c.Log.Format }},
		{"tls.cert", "tls-cert", "certificate file (PEM, full chain): serve HTTPS and WSS", func(c *Config) any { return &c.TLS.Cert }},
		{"tls.key", "tls-key", "private key file (PEM) of tls.cert", func(c *Config) any { return &c.TLS.Key }},
		{"http.allowed-origins", "allowed-origins", "comma-separated hosts (patterns like *.example.com) whose pages may open /ws besides the server's own", func(c *Config) any { return &c.HTTP.AllowedOrigins }},
		{"http.trusted-proxies", "trusted-proxies", "comma-separated IPs or CIDRs of reverse proxies whose X-Forwarded-For is believed", func(c *Config) any { return &c.HTTP.TrustedProxies }},
		{"http.pprof", "pprof", "serve Go profiles at /debug/pprof/", func(c *Config) any { return &c.HTTP.Pprof }},
		{"ice.udp-port", "udp-port", "single UDP port for all media (single-port mode)", func(c *Config) any { return &c.ICE.UDPPort }},
		{"ice.udp-ports", "udp-ports", "UDP port range MIN-MAX for media (port-range mode; default: any port)", func(c *Config) any { return &c.ICE.UDPPorts }},
		{"ice.tcp-port", "tcp-port", "TCP port for ICE over TCP, for clients whose network blocks UDP (0: off)", func(c *Config) any { return &c.ICE.TCPPort }},
		{"ice.public-ip", "public-ip", "IP address to announce in ICE candidates (host behind 1:1 NAT)", func(c *Config) any { return &c.ICE.PublicIP }},
		{"ice.loopback", "loopback", "also offer loopback ICE candidates (tests on one machine)", func(c *Config) any { return &c.ICE.Loopback }},
		{"turn.enabled", "turn", "run the embedded TURN server (needs ice.udp-port)", func(c *Config) any { return &c.TURN.Enabled }},
		{"turn.host", "turn-host", "host name or IP clients use for TURN (default: ice.public-ip)", func(c *Config) any { return &c.TURN.Host }},
		{"turn.udp-port", "turn-udp-port", "TURN over UDP port (0: off)", func(c *Config) any { return &c.TURN.UDPPort }},
		{"turn.tcp-port", "turn-tcp-port", "TURN over TCP port (0: off)", func(c *Config) any { return &c.TURN.TCPPort }},
		{"turn.tls-port", "turn-tls-port", "TURN over TLS port, with tls.cert (0: off)", func(c *Config) any { return &c.TURN.TLSPort }},
		{"turn.credential-ttl", "turn-credential-ttl", "how long a participant's TURN credentials can open allocations", func(c *Config) any { return &c.TURN.CredentialTTL }},
		{"auth.secret", "", "join token secret (HS256, at least 32 bytes); set it in the file or the environment, not on the command line", func(c *Config) any { return &c.Auth.Secret }},
		{"auth.secret-file", "auth-secret-file", "file holding the join token secret", func(c *Config) any { return &c.Auth.SecretFile }},
		{"auth.open", "auth-open", "in production, run without join tokens anyway", func(c *Config) any { return &c.Auth.Open }},
		{"api.key", "", "key of the server's HTTP API (/api/, docs/api.md), besides admin tokens; set it in the file or the environment, not on the command line", func(c *Config) any { return &c.API.Key }},
		{"api.key-file", "api-key-file", "file holding the API key", func(c *Config) any { return &c.API.KeyFile }},
		{"webhooks.urls", "webhook-urls", "comma-separated URLs to POST room, participant and track events to (docs/api.md)", func(c *Config) any { return &c.Webhooks.URLs }},
		{"webhooks.secret", "", "key of the webhooks' HMAC-SHA256 signature; set it in the file or the environment", func(c *Config) any { return &c.Webhooks.Secret }},
		{"webhooks.secret-file", "webhook-secret-file", "file holding the webhook secret", func(c *Config) any { return &c.Webhooks.SecretFile }},
		{"limits.rooms", "max-rooms", "rooms per server (0: no limit)", func(c *Config) any { return &c.Limits.Rooms }},
		{"limits.participants-per-room", "max-participants", "participants per room (0: no limit)", func(c *Config) any { return &c.Limits.ParticipantsPerRoom }},
		{"limits.connections-per-ip-per-minute", "max-connections-per-ip", "WebSocket connections per client IP per minute (0: no limit)", func(c *Config) any { return &c.Limits.ConnectionsPerMinute }},
		{"limits.messages-per-second", "max-messages-per-second", "signaling messages per connection per second, bursts of twice as many (0: no limit)", func(c *Config) any { return &c.Limits.MessagesPerSecond }},
		{"limits.message-size", "max-message-size", "largest signaling message in bytes (1024 to 1048576)", func(c *Config) any { return &c.Limits.MessageSize }},
		{"data.message-size", "data-message-size", "largest chat or app message over a data channel, in bytes (1024 to 65536, the data channel's own limit)", func(c *Config) any { return &c.Data.MessageSize }},
		{"data.messages-per-second", "data-messages-per-second", "chat and app messages per participant per second (0: no limit)", func(c *Config) any { return &c.Data.MessagesPerSecond }},
		{"data.file-size", "data-file-size", "largest file a participant may send the room, in bytes (0: no files)", func(c *Config) any { return &c.Data.FileSize }},
		{"session.resume-grace", "resume-grace", "how long a participant whose connection broke stays in its room for its client to resume (0: it leaves at once)", func(c *Config) any { return &c.Session.ResumeGrace }},
		{"shutdown.grace", "shutdown-grace", "on SIGTERM, how long clients may stay before they are disconnected", func(c *Config) any { return &c.Shutdown.Grace }},
		{"cluster.nats", "cluster-nats", "comma-separated NATS URLs (nats:// or tls://) of the cluster to join (default: an embedded NATS that opens no port: a single node)", func(c *Config) any { return &c.Cluster.NATS }},
		{"cluster.node-id", "node-id", "this node's name in the cluster, unique (default: the host name)", func(c *Config) any { return &c.Cluster.NodeID }},
		{"cluster.advertise-url", "advertise-url", "the URL clients reach this node at, e.g. https://sfu1.example.com/ (needed with cluster.nats: redirects point there)", func(c *Config) any { return &c.Cluster.AdvertiseURL }},
		{"cluster.nats-credentials", "nats-credentials", "NATS credentials file (.creds) for cluster.nats", func(c *Config) any { return &c.Cluster.Credentials }},
		{"cluster.nats-ca", "nats-ca", "CA certificate file (PEM) to trust for tls:// NATS URLs", func(c *Config) any { return &c.Cluster.CA }},
		{"cluster.nats-cert", "nats-cert", "client certificate file (PEM) for NATS with TLS client authentication", func(c *Config) any { return &c.Cluster.Cert }},
		{"cluster.nats-key", "nats-key", "private key file (PEM) of cluster.nats-cert", func(c *Config) any { return &c.Cluster.Key }},
		{"cluster.relay-port", "relay-port", "UDP port for media between the nodes of a cluster (0: any free port; open it between the nodes)", func(c *Config) any { return &c.Cluster.RelayPort }},
		{"cluster.relay-address", "relay-address", "address other nodes send media to this node at (default: the advertise URL's host if it is an IP, else the first global IPv4 address)", func(c *Config) any { return &c.Cluster.RelayAddress }},
		{"cluster.max-participants-per-node-room", "max-participants-per-node-room", "participants of one room on one node before the room spreads to another node (0: a room stays on one node)", func(c *Config) any { return &c.Cluster.MaxPerNode }},
		{"cluster.replicas", "cluster-replicas", "copies of the registry kept by a NATS cluster (1 to 5; 3 for a 3-node NATS)", func(c *Config) any { return &c.Cluster.Replicas }},
	}
}

// setValue parses text into the setting's field.
func setValue(ptr any, text string) error {
	switch p := ptr.(type) {
	case *string:
		*p = text
	case *bool:
		v, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("%q is not true or false", text)
		}
		*p = v
	case *int:
		v, err := strconv.Atoi(text)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", text)
		}
		*p = v
	case *time.Duration:
		v, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 30s or 1h", text)
		}
		*p = v
	case *[]string:
		*p = nil
		for _, f := range strings.Split(text, ",") {
			if f = strings.TrimSpace(f); f != "" {
				*p = append(*p, f)
			}
		}
	default:
		panic(fmt.Sprintf("setting of type %T", ptr))
	}
	return nil
}

// flagValue defers a flag's value: flags win over the file and the
// environment, but the file is only known once the flags are parsed.
type flagValue struct {
	isBool bool
	text   *string
}

func (f flagValue) String() string {
	if f.text == nil {
		return ""
	}
	return *f.text
}
func (f flagValue) Set(s string) error { *f.text = s; return nil }
func (f flagValue) IsBoolFlag() bool   { return f.isBool }

// errUsage marks a configuration error: exit code 2.
type errUsage struct{ error }

// loadConfig builds the configuration from the command line args, the
// environment (getenv) and the file they name. It returns flag.ErrHelp for
// -h, and wants printing when -print-config was given.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (c Config, printIt bool, err error) {
	c = defaults()
	fl := flag.NewFlagSet("sfu", flag.ContinueOnError)
	fl.SetOutput(stderr)
	configFile := fl.String("config", getenv("SWITCHBOARD_CONFIG"), "YAML configuration file (see deploy/config.example.yaml)")
	fl.BoolVar(&printIt, "print-config", false, "print the effective configuration as YAML and exit")
	all := settings()
	given := map[string]*string{}
	for _, s := range all {
		if s.flag == "" {
			continue
		}
		text := new(string)
		given[s.flag] = text
		_, isBool := s.ptr(&c).(*bool)
		fl.Var(flagValue{isBool: isBool, text: text}, s.flag, s.usage+" ("+s.key+", $"+s.env()+")")
	}
	if err := fl.Parse(args); err != nil {
		return c, false, err
	}
	if fl.NArg() > 0 {
		return c, false, errUsage{fmt.Errorf("unexpected argument %q", fl.Arg(0))}
	}

	if *configFile != "" {
		b, err := os.ReadFile(*configFile)
		if err != nil {
			return c, false, errUsage{err}
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		// A misspelt key is an error, not a silent default; an empty file
		// (io.EOF) is a valid if pointless configuration.
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, false, errUsage{fmt.Errorf("%s: %w", *configFile, err)}
		}
	}
	for _, s := range all {
		if v, ok := lookup(getenv, s.env()); ok {
			if err := setValue(s.ptr(&c), v); err != nil {
				return c, false, errUsage{fmt.Errorf("%s ($%s): %w", s.key, s.env(), err)}
			}
		}
	}
	var ferr error
	fl.Visit(func(f *flag.Flag) {
		for _, s := range all {
			if s.flag == f.Name && ferr == nil {
				if err := setValue(s.ptr(&c), *given[s.flag]); err != nil {
					ferr = errUsage{fmt.Errorf("-%s (%s): %w", s.flag, s.key, err)}
				}
			}
		}
	})
	if ferr != nil {
		return c, false, ferr
	}
	if err := c.validate(); err != nil {
		return c, false, errUsage{err}
	}
	return c, printIt, nil
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// invalid names the key whose value is wrong.
func invalid(key, format string, args ...any) error {
	return fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
}

// validate checks every value and the combinations of them.
func (c *Config) validate() error {
	if c.Mode != development && c.Mode != production {
		return invalid("mode", "%q: want development or production", c.Mode)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return invalid("listen", "%q: want HOST:PORT or :PORT", c.Listen)
	}
	if _, err := zapcore.ParseLevel(c.Log.Level); err != nil {
		return invalid("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "" && c.Log.Format != "json" && c.Log.Format != "console" {
		return invalid("log.format", "%q: want json or console", c.Log.Format)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return invalid("tls", "tls.cert and tls.key go together")
	}
	if c.TLS.Cert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLS.Cert, c.TLS.Key); err != nil {
			return invalid("tls.cert", "%v", err)
		}
	}
	for _, o := range c.HTTP.AllowedOrigins {
		if _, err := path.Match(o, ""); err != nil || (strings.Contains(o, "/") && !strings.Contains(o, "://")) {
			return invalid("http.allowed-origins", "%q: want a host such as app.example.com or *.example.com", o)
		}
	}
	if _, err := parseNets(c.HTTP.TrustedProxies); err != nil {
		return invalid("http.trusted-proxies", "%v", err)
	}
	for key, port := range map[string]int{"ice.udp-port": c.ICE.UDPPort, "ice.tcp-port": c.ICE.TCPPort,
		"turn.udp-port": c.TURN.UDPPort, "turn.tcp-port": c.TURN.TCPPort, "turn.tls-port": c.TURN.TLSPort} {
		if port < 0 || port > 65535 {
			return invalid(key, "%d is not a port", port)
		}
	}
	if _, _, err := c.portRange(); err != nil {
		return invalid("ice.udp-ports", "%v", err)
	}
	if c.ICE.UDPPort != 0 && c.ICE.UDPPorts != "" {
		return invalid("ice.udp-port", "single-port mode (ice.udp-port) and port-range mode (ice.udp-ports) exclude each other")
	}
	if c.ICE.PublicIP != "" && net.ParseIP(c.ICE.PublicIP).To4() == nil {
		return invalid("ice.public-ip", "%q is not an IPv4 address", c.ICE.PublicIP)
	}
	if c.TURN.Enabled {
		if c.ICE.UDPPort == 0 {
			return invalid("turn.enabled", "the TURN server relays to the single media port: set ice.udp-port")
		}
		if c.turnHost() == "" {
			return invalid("turn.host", "clients need a host name or IP for TURN: set turn.host or ice.public-ip")
		}
		if c.TURN.UDPPort == 0 && c.TURN.TCPPort == 0 && (c.TURN.TLSPort == 0 || c.TLS.Cert == "") {
			return invalid("turn.enabled", "every TURN port is off")
		}
		if c.TURN.UDPPort != 0 && c.TURN.UDPPort == c.ICE.UDPPort {
			return invalid("turn.udp-port", "%d is also ice.udp-port", c.TURN.UDPPort)
		}
		if c.TURN.TCPPort != 0 && (c.TURN.TCPPort == c.ICE.TCPPort || c.TURN.TCPPort == c.TURN.TLSPort) {
			return invalid("turn.tcp-port", "%d is also ice.tcp-port or turn.tls-port", c.TURN.TCPPort)
		}
		if c.TURN.CredentialTTL <= 0 {
			return invalid("turn.credential-ttl", "%v: want a positive duration", c.TURN.CredentialTTL)
		}
	}
	if c.Auth.Secret != "" && c.Auth.SecretFile != "" {
		return invalid("auth.secret-file", "auth.secret and auth.secret-file exclude each other")
	}
	secret, err := c.secret()
	if err != nil {
		return err
	}
	if secret != nil && len(secret) < signal.MinSecretSize {
		return invalid("auth.secret", "%d bytes is too short: use at least %d random bytes (e.g. openssl rand -base64 32)",
			len(secret), signal.MinSecretSize)
	}
	if c.Mode == production && secret == nil && !c.Auth.Open {
		return invalid("auth.secret", "production mode needs join tokens: set auth.secret (or auth.secret-file), "+
			"or auth.open: true to let anyone join")
	}
	if c.API.Key != "" && c.API.KeyFile != "" {
		return invalid("api.key-file", "api.key and api.key-file exclude each other")
	}
	if key, err := c.apiKey(); err != nil {
		return err
	} else if (key != "" || c.API.KeyFile != "") && len(key) < 16 {
		return invalid("api.key", "%d bytes is too short: use at least 16 random bytes (e.g. openssl rand -base64 32)", len(key))
	}
	if c.Webhooks.Secret != "" && c.Webhooks.SecretFile != "" {
		return invalid("webhooks.secret-file", "webhooks.secret and webhooks.secret-file exclude each other")
	}
	for _, u := range c.Webhooks.URLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return invalid("webhooks.urls", "%q: want an http:// or https:// URL", u)
		}
	}
	if ws, err := c.webhookSecret(); err != nil {
		return err
	} else if len(c.Webhooks.URLs) > 0 && len(ws) == 0 {
		return invalid("webhooks.secret", "webhooks.urls needs a secret to sign the webhooks with: set webhooks.secret (or webhooks.secret-file)")
	}
	for key, n := range map[string]int{"limits.rooms": c.Limits.Rooms, "limits.participants-per-room": c.Limits.ParticipantsPerRoom,
		"limits.connections-per-ip-per-minute": c.Limits.ConnectionsPerMinute, "limits.messages-per-second": c.Limits.MessagesPerSecond} {
		if n < 0 {
			return invalid(key, "%d: want 0 (no limit) or more", n)
		}
	}
	if c.Limits.MessageSize < 1024 || c.Limits.MessageSize > 1<<20 {
		return invalid("limits.message-size", "%d: want 1024 to 1048576 bytes", c.Limits.MessageSize)
	}
	if c.Data.MessageSize < 1024 || c.Data.MessageSize > 64<<10 {
		return invalid("data.message-size", "%d: want 1024 to 65536 bytes (the most a data channel message carries here)", c.Data.MessageSize)
	}
	if c.Data.FileSize < 0 {
		return invalid("data.file-size", "%d: want 0 (no files) or more bytes", c.Data.FileSize)
	}
	if c.Data.MessagesPerSecond < 0 {
		return invalid("data.messages-per-second", "%d: want 0 (no limit) or more", c.Data.MessagesPerSecond)
	}
	if c.Session.ResumeGrace < 0 || c.Session.ResumeGrace > 10*time.Minute {
		return invalid("session.resume-grace", "%v: want 0 to 10m", c.Session.ResumeGrace)
	}
	if c.Shutdown.Grace < 0 {
		return invalid("shutdown.grace", "%v: want 0 or more", c.Shutdown.Grace)
	}
	return c.validateCluster()
}

func (c *Config) validateCluster() error {
	for _, u := range c.Cluster.NATS {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "nats" && p.Scheme != "tls") || p.Host == "" {
			return invalid("cluster.nats", "%q: want a nats:// or tls:// URL", u)
		}
	}
	if c.Cluster.RelayPort < 0 || c.Cluster.RelayPort > 65535 {
		return invalid("cluster.relay-port", "%d: want a UDP port, 0 for any", c.Cluster.RelayPort)
	}
	if a := c.Cluster.RelayAddress; a != "" && net.ParseIP(a) == nil {
		return invalid("cluster.relay-address", "%q: want an IP address", a)
	}
	if c.Cluster.MaxPerNode < 0 {
		return invalid("cluster.max-participants-per-node-room", "%d: want 0 (no spreading) or more", c.Cluster.MaxPerNode)
	}
	if c.Cluster.Replicas < 1 || c.Cluster.Replicas > 5 {
		return invalid("cluster.replicas", "%d: want 1 to 5", c.Cluster.Replicas)
	}
	if (c.Cluster.Cert == "") != (c.Cluster.Key == "") {
		return invalid("cluster.nats-cert", "cluster.nats-cert and cluster.nats-key go together")
	}
	if u := c.Cluster.AdvertiseURL; u != "" {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return invalid("cluster.advertise-url", "%q: want an http:// or https:// URL", u)
		}
	} else if len(c.Cluster.NATS) > 0 {
		return invalid("cluster.advertise-url", "cluster.nats needs the URL clients reach this node at, for redirects (e.g. https://sfu1.example.com/)")
	}
	return nil
}

// secret is the join token secret, nil for none.
func (c *Config) secret() ([]byte, error) {
	return secretOf("auth.secret-file", c.Auth.Secret, c.Auth.SecretFile)
}

// apiKey is the API key, "" for none.
func (c *Config) apiKey() (string, error) {
	b, err := secretOf("api.key-file", c.API.Key, c.API.KeyFile)
	return string(b), err
}

// webhookSecret is the webhooks' signing key, nil for none.
func (c *Config) webhookSecret() ([]byte, error) {
	return secretOf("webhooks.secret-file", c.Webhooks.Secret, c.Webhooks.SecretFile)
}

// secretOf is value, or what file (the setting fileKey) holds, trimmed;
// nil for neither.
func secretOf(fileKey, value, file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, invalid(fileKey, "%v", err)
		}
		return bytes.TrimSpace(b), nil
	}
	if value != "" {
		return []byte(value), nil
	}
	return nil, nil
}

// portRange parses ice.udp-ports; 0, 0 when unset.
func (c *Config) portRange() (lo, hi uint16, err error) {
	if c.ICE.UDPPorts == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(c.ICE.UDPPorts, "-")
	min, err1 := strconv.ParseUint(a, 10, 16)
	max, err2 := strconv.ParseUint(b, 10, 16)
	if !ok || err1 != nil || err2 != nil || min == 0 || min > max {
		return 0, 0, fmt.Errorf("%q: want MIN-MAX, e.g. 50000-60000", c.ICE.UDPPorts)
	}
	return uint16(min), uint16(max), nil
}

func (c *Config) turnHost() string {
	if c.TURN.Host != "" {
		return c.TURN.Host
	}
	return c.ICE.PublicIP
}

// logFormat is log.format, or the mode's default.
func (c *Config) logFormat() string {
	if c.Log.Format != "" {
		return c.Log.Format
	}
	if c.Mode == production {
		return "json"
	}
	return "console"
}

// parseNets parses IPs and CIDRs.
func parseNets(list []string) ([]*net.IPNet, error) {
	var nets []*net.IPNet
	for _, s := range list {
		if !strings.Contains(s, "/") {
			ip := net.ParseIP(s)
			if ip == nil {
				return nil, fmt.Errorf("%q is not an IP or CIDR", s)
			}
			bits := 8 * len(ip.To16())
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			nets = append(nets, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP or CIDR", s)
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// printable is c as -print-config shows it: secrets hidden.
func (c Config) printable() ([]byte, error) {
	for _, p := range []*string{&c.Auth.Secret, &c.API.Key, &c.Webhooks.Secret} {
		if *p != "" {
			*p = "<redacted>"
		}
	}
	return yaml.Marshal(c)
}
