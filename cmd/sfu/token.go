package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	sig "github.com/switchboard-sfu/switchboard/signal"
)

// tokenMain is `sfu token`: it mints a join token with the secret of the
// server's configuration (-config, $SWITCHBOARD_CONFIG, $SWITCHBOARD_AUTH_SECRET).
func tokenMain(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("sfu token", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var g sig.Grant
	fl.StringVar(&g.Room, "room", "", "the room the token admits to (required)")
	fl.StringVar(&g.Identity, "identity", "", "who the participant is: the token's subject (required)")
	fl.StringVar(&g.Name, "name", "", "the name others see (default: the identity)")
	fl.BoolVar(&g.Publish, "publish", true, "may publish camera and microphone")
	fl.BoolVar(&g.Subscribe, "subscribe", true, "may receive the others' media")
	fl.BoolVar(&g.Admin, "admin", false, "may moderate the room; with -room \"*\", an admin token for the server API in every room (docs/api.md)")
	ttl := fl.Duration("ttl", time.Hour, "how long the token admits its holder")
	base := fl.String("url", "", "the server's URL (https://sfu.example.com): print a join link instead of the bare token")
	configFile := fl.String("config", "", "the server's configuration file, for auth.secret")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "sfu token:", err)
		return 2
	}
	switch {
	case fl.NArg() > 0:
		return fail(fmt.Errorf("unexpected argument %q", fl.Arg(0)))
	case g.Room == "" || g.Identity == "":
		return fail(errors.New("-room and -identity are required"))
	case *ttl <= 0:
		return fail(errors.New("-ttl must be positive"))
	}
	var cargs []string
	if *configFile != "" {
		cargs = []string{"-config", *configFile}
	}
	c, _, err := loadConfig(cargs, getenv, stderr)
	if err != nil {
		return fail(err)
	}
	secret, _ := c.secret() // validated
	if secret == nil {
		return fail(errors.New("no auth.secret: set $SWITCHBOARD_AUTH_SECRET or auth.secret in -config"))
	}
	auth, err := sig.NewAuth(secret)
	if err != nil {
		return fail(err)
	}
	token, err := auth.Mint(g, *ttl)
	if err != nil {
		return fail(err)
	}
	if *base != "" {
		name := g.Name
		if name == "" {
			name = g.Identity
		}
		// With a name the web client joins at once; the server shows the token's.
		q := url.Values{"room": {g.Room}, "name": {name}, "token": {token}}
		token = strings.TrimSuffix(*base, "/") + "/?" + q.Encode()
	}
	fmt.Fprintln(stdout, token)
	return 0
}
