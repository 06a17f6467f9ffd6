package main

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/internal/browsertest"
	sig "github.com/switchboard-sfu/switchboard/signal"
)

// A host whose token has the admin right mutes a participant from the
// Participants panel: the third person sees the muted icon on that tile, and
// the muted person's own control offers to unmute. Then the host removes
// them: their page says so and does not come back, and the others lose
// their tile. Last, the host ends the call for everyone.
func TestBrowserModeration(t *testing.T) {
	_, base := startServerWith(t, func(c *Config) { c.Auth.Secret = secret32 })
	b := browsertest.Launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	auth, err := sig.NewAuth([]byte(secret32))
	if err != nil {
		t.Fatal(err)
	}

	const room = "moderated"
	names := []string{"host", "ann", "bob"}
	tabs := make([]*browsertest.Tab, len(names))
	for i, name := range names {
		tok, err := auth.Mint(sig.Grant{Identity: name, Name: name, Room: room, Publish: true, Subscribe: true, Admin: i == 0}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		tabs[i] = b.NewTab(t, base+"/?"+url.Values{"room": {room}, "name": {name}, "token": {tok}}.Encode())
	}
	ids := make([]string, len(tabs))
	for i, tab := range tabs {
		ids[i] = tabID(ctx, t, tab)
		if err := tab.WaitFor(ctx, findJS, nil); err != nil {
			t.Fatal(err)
		}
	}
	host, ann, bob := tabs[0], tabs[1], tabs[2]
	var admins []bool
	for _, tab := range tabs {
		var a bool
		if err := tab.Eval(ctx, `!!window.switchboard.you.admin`, &a); err != nil {
			t.Fatal(err)
		}
		admins = append(admins, a)
	}
	if !admins[0] || admins[1] || admins[2] {
		t.Fatalf("joined.you.admin of host, ann, bob: %v; want only the host's", admins)
	}

	// clickJS clicks the enabled button named name, once there is one.
	clickJS := func(name string) string {
		return fmt.Sprintf(`(() => { const b = find('button', %q); return !!b && !b.disabled && (b.click(), true); })()`, name)
	}
	click := func(tab *browsertest.Tab, who, name string) {
		t.Helper()
		if err := tab.WaitFor(ctx, clickJS(name), nil); err != nil {
			t.Fatalf("%s: no enabled %q button: %v\nconsole: %s", who, name, err, tab.Console())
		}
	}
	for i, tab := range tabs[1:] {
		var shows bool
		if err := tab.Eval(ctx, `find('button', 'Participants').click(), !!find('button', 'Mute host') || !!find('button', 'End call for everyone')`, &shows); err != nil {
			t.Fatal(err)
		}
		if shows {
			t.Errorf("%s (no admin right) is offered the moderator's buttons", names[i+1])
		}
	}
	click(host, "host", "Participants")
	annTile := fmt.Sprintf(`document.querySelector('#grid .tile[data-participant=%q]')`, ids[1])

	// Mute: the server stops ann's microphone; bob sees the icon, ann's page turns it off too.
	start := time.Now()
	click(host, "host", "Mute ann")
	if err := bob.WaitFor(ctx, `!!find('img', 'Microphone muted', `+annTile+`)`, nil); err != nil {
		t.Fatalf("bob does not see ann muted: %v\nconsole: %s", err, bob.Console())
	}
	var notice string
	if err := ann.WaitFor(ctx, `!!find('button', 'Unmute microphone') && [...document.querySelectorAll('#toasts .toast')].map(e => e.textContent).find(s => /muted your microphone/.test(s))`, &notice); err != nil {
		t.Fatalf("ann's page does not show that the host muted her: %v\nconsole: %s", err, ann.Console())
	}
	t.Logf("mute shown after %v; ann's notice: %q", time.Since(start).Round(time.Millisecond), notice)
	if notice != "host muted your microphone" {
		t.Errorf("ann's notice %q, want %q", notice, "host muted your microphone")
	}
	var muted bool
	if err := ann.Eval(ctx, `!document.getElementById('local').srcObject.getAudioTracks()[0].enabled`, &muted); err != nil {
		t.Fatal(err)
	}
	if !muted {
		t.Error("ann's microphone track is still enabled after the host muted it")
	}

	// Remove: ann's page says so and stays out; the others lose her tile.
	start = time.Now()
	click(host, "host", "Remove ann")
	var banner string
	if err := ann.WaitFor(ctx, `window.switchboard.state === 'closed' && document.getElementById('banner').textContent`, &banner); err != nil {
		t.Fatalf("ann's page does not leave the call: %v\nconsole: %s", err, ann.Console())
	}
	t.Logf("ann removed after %v; her page says %q", time.Since(start).Round(time.Millisecond), banner)
	// The error's message is the moderator's reason, nothing more (docs/protocol.md).
	if want := "You were removed from the call: removed by the host"; banner != want {
		t.Errorf("ann's page says %q, want %q", banner, want)
	}
	for i, tab := range []*browsertest.Tab{host, bob} {
		if err := tab.WaitFor(ctx, `!`+annTile, nil); err != nil {
			t.Errorf("%s still shows ann's tile: %v", names[[]int{0, 2}[i]], err)
		}
	}
	time.Sleep(3 * time.Second)
	var after struct {
		State  string `json:"state"`
		You    bool   `json:"you"`
		Banner string `json:"banner"`
		Form   bool   `json:"form"`
	}
	if err := ann.Eval(ctx, `({state: window.switchboard.state, you: !!window.switchboard.you,
  banner: document.getElementById('banner').textContent, form: !document.getElementById('join-form').hidden})`, &after); err != nil {
		t.Fatal(err)
	}
	if after.State != "closed" || after.You || after.Banner != banner {
		t.Errorf("3 s after the removal ann's page is %+v, want closed, not joined, still saying %q", after, banner)
	}
	var n int
	if err := host.Eval(ctx, `Object.keys(window.switchboard.participants).length`, &n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("the host sees %d others 3 s after the removal, want 1 (bob): ann came back?", n)
	}

	// End the call: bob's page says the host ended it; the host's says it did.
	click(host, "host", "End call for everyone")
	if err := bob.WaitFor(ctx, `window.switchboard.state === 'closed' && document.getElementById('banner').textContent`, &banner); err != nil {
		t.Fatalf("bob's page does not leave the ended call: %v\nconsole: %s", err, bob.Console())
	}
	t.Logf("bob's page says %q", banner)
	// The host gave no reason: the message is empty.
	if want := "The call was ended by the host."; banner != want {
		t.Errorf("bob's page says %q, want %q", banner, want)
	}
	if err := host.WaitFor(ctx, `window.switchboard.state === 'closed' && document.getElementById('banner').textContent`, &banner); err != nil {
		t.Fatalf("the host's page does not leave the ended call: %v", err)
	}
	if banner != "You ended the call for everyone." {
		t.Errorf("the host's page says %q, want \"You ended the call for everyone.\"", banner)
	}
}
