package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/internal/browsertest"
)

// typeAndSend types text into the textbox labelled "Message" and presses
// Send, as a user does.
func typeAndSend(ctx context.Context, t *testing.T, tab *browsertest.Tab, text string) {
	t.Helper()
	js := fmt.Sprintf(`(() => {
  const box = [...document.querySelectorAll('input')].find(e => e.labels && e.labels[0] && e.labels[0].firstChild.textContent.trim() === 'Message' && !e.closest('[hidden]'));
  const send = find('button', 'Send');
  if (!box || !send || !window.switchboard.chat.channel) return false;
  box.value = %q;
  box.dispatchEvent(new Event('input', {bubbles: true}));
  send.click();
  return box.value === ''; })()`, text)
	if err := tab.WaitFor(ctx, js, nil); err != nil {
		t.Fatalf("could not send %q: %v\nconsole: %s", text, err, tab.Console())
	}
}

// shows waits until tab's chat shows text from sender, as text.
func shows(ctx context.Context, t *testing.T, tab *browsertest.Tab, sender, text string) {
	t.Helper()
	js := fmt.Sprintf(`[...document.querySelectorAll('#chat-log li')].some(li => li.querySelector('.who') && li.querySelector('.who').textContent.startsWith(%q) && li.querySelector('.text').textContent === %q)`, sender, text)
	if err := tab.WaitFor(ctx, js, nil); err != nil {
		t.Fatalf("the chat does not show %q from %s: %v\nconsole: %s", text, sender, err, tab.Console())
	}
}

func openChat(ctx context.Context, t *testing.T, tab *browsertest.Tab) {
	t.Helper()
	// Clicked only while closed: a second click would close it again. Its
	// name says how many messages are unread ("Chat, 3 unread").
	if err := tab.WaitFor(ctx, `(() => { const b = document.getElementById('open-chat');
  if (!b || !/^Chat(, \d+ unread)?$/.test(b.getAttribute('aria-label'))) return false;
  if (b.getAttribute('aria-expanded') !== 'true') b.click();
  return find('button', 'Send') !== null; })()`, nil); err != nil {
		t.Fatalf("no Chat control: %v", err)
	}
}

// Two tabs chat through the panel; a message with markup is shown as text;
// a link is a link; one who joins later sees the history; and the chat
// round trip between two tabs is measured.
func TestBrowserChat(t *testing.T) {
	// No rate limit: the round trip is measured with 100 messages each way
	// as fast as they come back.
	_, base := startServerWith(t, func(c *Config) { c.Data.MessagesPerSecond = 0 })
	b := browsertest.Launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	tabs, ids := openRoom(ctx, t, b, base, "chat", []string{"Alice&publish=0", "Bob&publish=0"}, 1280, 800)
	alice, bob := tabs[0], tabs[1]
	openChat(ctx, t, alice)
	openChat(ctx, t, bob)

	typeAndSend(ctx, t, alice, "hello Bob")
	shows(ctx, t, bob, "Alice", "hello Bob")
	shows(ctx, t, alice, "Alice (you)", "hello Bob")
	const xss = `<img src=x onerror=alert(1)>`
	typeAndSend(ctx, t, bob, xss)
	shows(ctx, t, alice, "Bob", xss)
	var imgs int
	if err := alice.Eval(ctx, `document.querySelectorAll('#chat-log img').length`, &imgs); err != nil || imgs != 0 {
		t.Errorf("markup in a message made %d elements (%v)", imgs, err)
	}
	typeAndSend(ctx, t, bob, "see https://example.com/a?b=1.")
	var link struct{ Href, Rel, Text string }
	if err := alice.WaitFor(ctx, `(() => { const a = document.querySelector('#chat-log a'); return a && {href: a.href, rel: a.rel, text: a.textContent}; })()`, &link); err != nil {
		t.Fatal(err)
	}
	if link.Href != "https://example.com/a?b=1" || link.Rel != "noopener noreferrer" {
		t.Errorf("link %+v", link)
	}

	// The round trip: Bob answers each ping privately, Alice times it.
	if err := bob.Eval(ctx, `addEventListener('switchboard-chat', e => {
  const m = e.detail;
  if (m.text.startsWith('ping ') && m.from.id !== switchboard.you.id) switchboard.chat.send('pong ' + m.text.slice(5), m.from.id);
}), true`, nil); err != nil {
		t.Fatal(err)
	}
	var rtts []float64
	if err := alice.Eval(ctx, fmt.Sprintf(`(async () => {
  const rtts = [];
  for (let i = 0; i < 100; i++) {
    const t0 = performance.now();
    await new Promise(resolve => {
      const h = e => { if (e.detail.text === 'pong ' + i) { removeEventListener('switchboard-chat', h); resolve(); } };
      addEventListener('switchboard-chat', h);
      switchboard.chat.send('ping ' + i, %q);
    });
    rtts.push(performance.now() - t0);
  }
  return rtts; })()`, ids[1]), &rtts); err != nil {
		t.Fatal(err)
	}
	slices.Sort(rtts)
	t.Logf("chat round trip between two tabs over 100 messages: median %.1f ms, p99 %.1f ms, max %.1f ms",
		rtts[len(rtts)/2], rtts[(len(rtts)*99+99)/100-1], rtts[len(rtts)-1])

	t.Logf("%v in, Carol joins", time.Since(start).Round(100*time.Millisecond))
	// Carol joins later: she sees the messages to everyone, not the private ones.
	carol := b.NewTab(t, "about:blank")
	if err := carol.Eval(ctx, fmt.Sprintf(`location.assign(%q), true`, base+"/?room=chat&name=Carol&publish=0"), nil); err != nil {
		t.Fatal(err)
	}
	tabID(ctx, t, carol)
	if err := carol.WaitFor(ctx, findJS, nil); err != nil {
		t.Fatal(err)
	}
	openChat(ctx, t, carol)
	t.Logf("%v in, Carol's chat is open", time.Since(start).Round(100*time.Millisecond))
	shows(ctx, t, carol, "Alice", "hello Bob")
	shows(ctx, t, carol, "Bob", xss)
	shows(ctx, t, carol, "Bob", "see https://example.com/a?b=1.")
	var texts []string
	if err := carol.Eval(ctx, `switchboard.chat.messages.map(m => m.text)`, &texts); err != nil {
		t.Fatal(err)
	}
	if len(texts) != 3 || texts[0] != "hello Bob" {
		t.Errorf("Carol's history %q; want the 3 messages to everyone, oldest first", texts)
	}
}
