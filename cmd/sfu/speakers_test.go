package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/internal/browsertest"
)

// Active speakers: the server reads the audio level each publisher's
// packets carry and ranks who speaks. Of three tabs, only the one whose
// microphone is on (the fake device beeps) is highlighted in the others,
// soon after it is unmuted; muted ones never are.
func TestPageSpeakers(t *testing.T) {
	_, base := startServer(t)
	b := browsertest.Launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tabs, ids := openRoom(ctx, t, b, base, "speakers", []string{"ann", "bob", "cy"}, 1280, 800)
	click := func(tab *browsertest.Tab, name string) {
		t.Helper()
		if err := tab.WaitFor(ctx, fmt.Sprintf(`(() => { const b = find('button', %q); return b && !b.disabled && (b.click(), true); })()`, name), nil); err != nil {
			t.Fatalf("no %q button: %v", name, err)
		}
	}
	for _, tab := range tabs {
		click(tab, "Mute microphone")
	}
	speakers := func(tab *browsertest.Tab) []string {
		var s []string
		if err := tab.Eval(ctx, `window.switchboard.speakers || []`, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	waitUntil(t, 15*time.Second, "nobody speaking while everyone is muted", func() bool {
		return len(speakers(tabs[1])) == 0 && len(speakers(tabs[2])) == 0
	})

	click(tabs[0], "Unmute microphone")
	unmuted := time.Now()
	onlyFirst := fmt.Sprintf(`(() => { const s = window.switchboard.speakers;
  return !!s && s.length === 1 && s[0] === %q &&
    !!document.querySelector('#grid .tile.speaking[data-participant=%q]'); })()`, ids[0], ids[0])
	for i, tab := range tabs[1:] {
		if err := tab.WaitFor(ctx, onlyFirst, nil); err != nil {
			t.Fatalf("tab %d never showed the unmuted tab as the one speaker: %v (speakers %v)", i+1, err, speakers(tab))
		}
	}
	t.Logf("the unmuted tab is ranked and highlighted in the others %v after it was unmuted", time.Since(unmuted).Round(time.Millisecond))
	if s := speakers(tabs[0]); !slices.Equal(s, ids[:1]) {
		t.Errorf("the speaking tab itself: speakers %v, want only itself", s)
	}
}
