package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/internal/browsertest"
)

// makeFileJS makes a Blob of n random bytes in the page as window.testFile,
// with its SHA-256 in window.testFileHash.
func makeFileJS(n int, name string) string {
	return `(async () => {
  const n = ` + strconv.Itoa(n) + `, parts = [];
  for (let off = 0; off < n; off += 1 << 20) {
    const u8 = new Uint8Array(Math.min(1 << 20, n - off));
    for (let i = 0; i < u8.length; i += 65536) crypto.getRandomValues(u8.subarray(i, i + 65536));
    parts.push(u8);
  }
  window.testFile = new File(parts, '` + name + `', {type: 'application/octet-stream'});
  window.testFileHash = [...new Uint8Array(await crypto.subtle.digest('SHA-256', await testFile.arrayBuffer()))].map(b => b.toString(16).padStart(2, '0')).join('');
  return testFileHash; })()`
}

// receivedHashJS waits for the file named name to be received whole and
// hashes it: {hash, size, link (its download attribute), max, mid (a
// progress value between 0 and 100 was shown)}.
const receivedHashJS = `(async () => {
  const t = [...switchboard.files.incoming.values()].find(t => t.name === NAME && t.blob);
  if (!t) return false;
  const a = t.ui.li.querySelector('a[download]');
  const bar = t.ui.li.querySelector('[role=progressbar]');
  const hash = [...new Uint8Array(await crypto.subtle.digest('SHA-256', await t.blob.arrayBuffer()))].map(b => b.toString(16).padStart(2, '0')).join('');
  return {hash, size: t.blob.size, link: a ? a.download : '', href: a ? a.href : '', now: bar.getAttribute('aria-valuenow'), mid: !!window.sawMid}; })()`

// Alice sends Bob a file of a few MB through the Chat panel's "Send file"
// control; it arrives byte for byte, with progress on both sides and a
// link that saves it under its name. Then 50 MB, timed, with the server's
// memory before and after.
func TestBrowserFileTransfer(t *testing.T) {
	_, base := startServerWith(t, nil) // the default message rate limit: chunks are not counted
	b := browsertest.Launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	tabs, _ := openRoom(ctx, t, b, base, "files", []string{"Alice&publish=0", "Bob&publish=0"}, 1280, 800)
	alice, bob := tabs[0], tabs[1]
	openChat(ctx, t, alice)
	openChat(ctx, t, bob)
	if err := alice.WaitFor(ctx, `!!switchboard.chat.channel`, nil); err != nil {
		t.Fatal(err)
	}
	if err := bob.WaitFor(ctx, `!!switchboard.chat.channel`, nil); err != nil {
		t.Fatal(err)
	}
	// Bob watches his progress bars for a value between 0 and 100.
	if err := bob.Eval(ctx, `new MutationObserver(ms => { for (const m of ms) { const v = Number(m.target.getAttribute('aria-valuenow')); if (v > 0 && v < 100) window.sawMid = true; } })
  .observe(document.getElementById('chat-log'), {subtree: true, attributes: true, attributeFilter: ['aria-valuenow']}), true`, nil); err != nil {
		t.Fatal(err)
	}

	const name = `report <b>&amp; "x".bin`
	var want string
	if err := alice.Eval(ctx, makeFileJS(3<<20+12345, strings.ReplaceAll(name, `"`, `\"`)), &want); err != nil {
		t.Fatal(err)
	}
	// Chosen in the file input named "Send file", as a user does.
	var ok bool
	if err := alice.Eval(ctx, `(() => {
  const input = [...document.querySelectorAll('input[type=file]')].find(e => e.labels && e.labels[0] && e.labels[0].textContent.trim() === 'Send file' && !e.closest('[hidden]'));
  if (!input) return false;
  const dt = new DataTransfer();
  dt.items.add(testFile);
  input.files = dt.files;
  input.dispatchEvent(new Event('change', {bubbles: true}));
  return true; })()`, &ok); err != nil || !ok {
		t.Fatalf("no Send file input (%v)", err)
	}
	var got struct {
		Hash, Link, Href, Now string
		Size                  int
		Mid                   bool
	}
	js := strings.Replace(receivedHashJS, "NAME", "'"+strings.ReplaceAll(name, `"`, `\"`)+"'", 1)
	if err := bob.WaitFor(ctx, js, &got); err != nil {
		t.Fatalf("Bob never got the file: %v\nconsole: %s\nalice: %s", err, bob.Console(), alice.Console())
	}
	if got.Hash != want || got.Size != 3<<20+12345 {
		t.Errorf("Bob got %d bytes with SHA-256 %s; want %d bytes, %s", got.Size, got.Hash, 3<<20+12345, want)
	}
	if got.Link != name || !strings.HasPrefix(got.Href, "blob:") || got.Now != "100" || !got.Mid {
		t.Errorf("Bob's entry: %+v", got)
	}
	// Alice's side: 100% and "Sent"; the name shown as text.
	var sender struct {
		Now, Status string
		Markup      int
	}
	if err := alice.WaitFor(ctx, `(() => { const li = document.querySelector('#chat-log li.file'); const bar = li && li.querySelector('[role=progressbar]');
  return bar && bar.getAttribute('aria-valuenow') === '100' && li.querySelector('.status').textContent.startsWith('Sent') &&
    {now: bar.getAttribute('aria-valuenow'), status: li.querySelector('.status').textContent, markup: document.querySelectorAll('#chat-log b').length}; })()`, &sender); err != nil {
		t.Fatalf("Alice's progress: %v", err)
	}
	if sender.Markup != 0 {
		t.Errorf("the file's name made markup")
	}

	// 50 MB, timed from the offer to the receiver's last acknowledgement.
	port := base[strings.LastIndex(base, ":")+1:]
	before := scrapeMetrics(t, port)["process_resident_memory_bytes"]
	const big = 50 << 20
	if err := alice.Eval(ctx, makeFileJS(big, "big.bin"), &want); err != nil {
		t.Fatal(err)
	}
	var seconds float64
	if err := alice.Eval(ctx, `(async () => { const t0 = performance.now(); const t = await switchboard.files.send(testFile, ''); return t.ui.status.textContent.startsWith('Sent') ? (performance.now() - t0) / 1000 : -1; })()`, &seconds); err != nil || seconds <= 0 {
		t.Fatalf("50 MB: %v (%v)\nconsole: %s", seconds, err, alice.Console())
	}
	after := scrapeMetrics(t, port)["process_resident_memory_bytes"]
	js = strings.Replace(receivedHashJS, "NAME", "'big.bin'", 1)
	if err := bob.WaitFor(ctx, js, &got); err != nil {
		t.Fatal(err)
	}
	if got.Hash != want || got.Size != big {
		t.Errorf("50 MB: Bob got %d bytes, SHA-256 %s; want %s", got.Size, got.Hash, want)
	}
	t.Logf("50 MB between two tabs on loopback: %.1f s, %.1f MB/s; the server's (test process's) RSS %.0f MiB before, %.0f MiB after",
		seconds, big/seconds/1e6, before/(1<<20), after/(1<<20))

	// Cancel on either side: Bob stops one mid-way, Alice another.
	if err := alice.Eval(ctx, makeFileJS(20<<20, "c1.bin"), &want); err != nil {
		t.Fatal(err)
	}
	if err := alice.Eval(ctx, `window.c1 = switchboard.files.send(testFile, ''), true`, nil); err != nil {
		t.Fatal(err)
	}
	cancelMid := func(tab *browsertest.Tab, side, name string) {
		t.Helper()
		if err := tab.WaitFor(ctx, `(() => { const t = [...switchboard.files.`+side+`.values()].find(t => t.name === '`+name+`');
  const bar = t && t.ui.bar; if (!bar || Number(bar.getAttribute('aria-valuenow')) < 5) return false;
  [...t.ui.li.querySelectorAll('button')].find(b => b.textContent === 'Cancel').click(); return true; })()`, nil); err != nil {
			t.Fatalf("no Cancel on %s: %v", name, err)
		}
	}
	status := func(tab *browsertest.Tab, side, name, want string) {
		t.Helper()
		var got string
		if err := tab.WaitFor(ctx, `(() => { const t = [...switchboard.files.`+side+`.values()].find(t => t.name === '`+name+`'); return t && t.over && t.ui.status.textContent; })()`, &got); err != nil || got != want {
			t.Errorf("%s (%s): status %q (%v); want %q", name, side, got, err, want)
		}
	}
	cancelMid(bob, "incoming", "c1.bin")
	status(bob, "incoming", "c1.bin", "Cancelled.")
	status(alice, "outgoing", "c1.bin", "Nobody is receiving it any more.")
	if err := alice.Eval(ctx, makeFileJS(20<<20, "c2.bin"), &want); err != nil {
		t.Fatal(err)
	}
	if err := alice.Eval(ctx, `window.c2 = switchboard.files.send(testFile, ''), true`, nil); err != nil {
		t.Fatal(err)
	}
	cancelMid(alice, "outgoing", "c2.bin")
	status(alice, "outgoing", "c2.bin", "Cancelled.")
	status(bob, "incoming", "c2.bin", "Cancelled by the sender.")
	// Chat still works after.
	typeAndSend(ctx, t, bob, "still here")
	shows(ctx, t, alice, "Bob", "still here")
}
