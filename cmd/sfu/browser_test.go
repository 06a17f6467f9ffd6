package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/internal/browsertest"
)

// remoteMedia reports, per remote participant tile, what the tab receives
// and decodes.
const remoteMedia = `(async () => {
  const pc = window.switchboard.subscriber;
  if (!pc) return {};
  const byTrack = {};
  (await pc.getStats()).forEach(r => { if (r.type === 'inbound-rtp') byTrack[r.trackIdentifier] = r; });
  const out = {};
  for (const el of document.querySelectorAll('#grid .tile[data-participant]')) {
    const s = el.querySelector('video').srcObject;
    const v = s && s.getVideoTracks()[0], a = s && s.getAudioTracks()[0];
    const vr = v && byTrack[v.id], ar = a && byTrack[a.id];
    out[el.dataset.participant] = {
      video: (vr && vr.packetsReceived) || 0, audio: (ar && ar.packetsReceived) || 0,
      frames: (vr && vr.framesDecoded) || 0, width: (vr && vr.frameWidth) || 0,
      samples: (ar && ar.totalSamplesReceived) || 0, energy: (ar && ar.totalAudioEnergy) || 0,
    };
  }
  return out;
})()`

type media struct {
	Video   int     `json:"video"` // packets
	Audio   int     `json:"audio"` // packets
	Frames  int     `json:"frames"`
	Width   int     `json:"width"`
	Samples int     `json:"samples"`
	Energy  float64 `json:"energy"`
}

func (m media) String() string {
	return fmt.Sprintf("audio %d packets, video %d packets, %d frames decoded", m.Audio, m.Video, m.Frames)
}

// Three tabs of real Chromium join one room through the embedded client;
// each must decode video and hear audio from both others, and when one tab
// closes the other two drop its tile.
func TestBrowserConference(t *testing.T) {
	_, base := startServer(t)
	b := browsertest.Launch(t)
	cpu0 := processCPU(t)

	const n = 3
	tabs := make([]*browsertest.Tab, n)
	ids := make([]string, n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Blank tabs first, then all three navigate at once: each tab's time to
	// first remote frame then measures joining, not waiting for the next
	// tab to be opened.
	for i := range tabs {
		tabs[i] = b.NewTab(t, "about:blank")
	}
	for i, tab := range tabs {
		if err := tab.Eval(ctx, fmt.Sprintf(`location.assign(%q), true`, fmt.Sprintf("%s/?room=e2e&name=tab%d", base, i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, tab := range tabs {
		if err := tab.WaitFor(ctx, `window.switchboard && window.switchboard.you && window.switchboard.you.id`, &ids[i]); err != nil {
			t.Fatalf("tab %d never joined: %v\nconsole: %s", i, err, tab.Console())
		}
	}

	decoding := func(i int, min map[string]media) (map[string]media, bool) {
		var got map[string]media
		if err := tabs[i].Eval(ctx, remoteMedia, &got); err != nil {
			return nil, false
		}
		for j, id := range ids {
			if j == i {
				continue
			}
			m := got[id]
			if m.Frames <= min[id].Frames || m.Width == 0 || m.Samples <= min[id].Samples {
				return got, false
			}
		}
		return got, true
	}
	start := time.Now()
	first := make([]map[string]media, n)
	for i := range tabs {
		waitUntil(t, 10*time.Second-time.Since(start), fmt.Sprintf("tab %d to decode both others", i), func() bool {
			var ok bool
			first[i], ok = decoding(i, nil)
			return ok
		})
	}
	// Still decoding a moment later: frames and samples keep rising, and the
	// fake microphone's tone arrives with energy.
	for i := range tabs {
		waitUntil(t, 10*time.Second, fmt.Sprintf("tab %d to keep decoding", i), func() bool {
			got, ok := decoding(i, first[i])
			if !ok {
				return false
			}
			for j, id := range ids {
				if j != i && got[id].Energy <= 0 {
					return false
				}
			}
			return true
		})
	}

	var firstFrame []float64
	for _, tab := range tabs {
		var ms float64
		if err := tab.Eval(ctx, `window.switchboard.firstRemoteFrameAt - window.switchboard.loadedAt`, &ms); err != nil {
			t.Fatal(err)
		}
		firstFrame = append(firstFrame, ms)
		_ = tab.Eval(ctx, `(() => { const t = window.switchboard.timings, l = window.switchboard.loadedAt; for (const k in t) t[k] -= l; return true })()`, nil)
	}
	for i, tab := range tabs {
		var timings map[string]float64
		_ = tab.Eval(ctx, `window.switchboard.timings`, &timings)
		t.Logf("tab %d timings (ms since page load): %v", i, relative(timings, firstFrame[i]))
	}
	slices.Sort(firstFrame)
	t.Logf("page load to first remote frame: median %.0f ms (all: %.0f ms); process CPU %.2f s, RSS high-water %d MiB",
		firstFrame[n/2], firstFrame, processCPU(t)-cpu0, processRSS(t)>>20)

	// The server offers AES-GCM first: a fifth of AES-CM+HMAC's cost per
	// packet. Chrome must have taken it on both connections.
	var ciphers []string
	if err := tabs[0].Eval(ctx, `(async () => {
  const out = [];
  for (const pc of [window.switchboard.publisher, window.switchboard.subscriber])
    (await pc.getStats()).forEach(s => { if (s.type === 'transport') out.push(s.srtpCipher); });
  return out; })()`, &ciphers); err != nil {
		t.Fatal(err)
	}
	for _, c := range ciphers {
		if c != "SRTP_AEAD_AES_128_GCM" {
			t.Errorf("SRTP ciphers %v, want SRTP_AEAD_AES_128_GCM on both connections", ciphers)
		}
	}

	if err := tabs[2].Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		var tiles []string
		if err := tabs[i].WaitFor(ctx, fmt.Sprintf(`!window.switchboard.tiles().includes(%q) && window.switchboard.tiles()`, ids[2]), &tiles); err != nil {
			t.Fatalf("tab %d kept the closed tab's tile: %v", i, err)
		}
		if len(tiles) != 1 || tiles[0] != ids[1-i] {
			t.Errorf("tab %d shows tiles %v, want only %s", i, tiles, ids[1-i])
		}
	}
}

// processCPU is this process's user+system CPU time in seconds: the server
// runs in-process, Chromium does not.
func processCPU(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip("no /proc")
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

func processRSS(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func relative(m map[string]float64, _ float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return int(m[a] - m[b]) })
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%s=%.0f ", k, m[k])
	}
	return sb.String()
}

// Each codec the server negotiates must reach a second tab and decode there.
func TestBrowserCodecs(t *testing.T) {
	_, base := startServer(t)
	b := browsertest.Launch(t)
	for _, codec := range []string{"vp8", "vp9", "h264"} {
		t.Run(codec, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			room := "codec-" + codec
			pub := b.NewTab(t, fmt.Sprintf("%s/?room=%s&name=pub&codec=%s", base, room, codec))
			sub := b.NewTab(t, fmt.Sprintf("%s/?room=%s&name=sub&codec=%s", base, room, codec))
			var got struct {
				Mime   string `json:"mime"`
				Frames int    `json:"frames"`
			}
			err := sub.WaitFor(ctx, `(async () => {
  const pc = window.switchboard.subscriber;
  if (!pc) return null;
  const stats = await pc.getStats();
  let r = null;
  stats.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 10) r = s; });
  return r && { mime: stats.get(r.codecId).mimeType, frames: r.framesDecoded };
})()`, &got)
			if err != nil {
				t.Fatalf("no decoded video: %v\npublisher console: %s\nsubscriber console: %s", err, pub.Console(), sub.Console())
			}
			if !strings.EqualFold(got.Mime, "video/"+codec) {
				t.Errorf("subscriber decodes %s, want video/%s", got.Mime, codec)
			}
		})
	}
}
