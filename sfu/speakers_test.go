package sfu

import (
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// run feeds the detector ticks of activities and returns, per tick, the
// ranking after it.
func run(sd *speakerDetector, ticks int, act map[string]float64) [][]string {
	var out [][]string
	for range ticks {
		sd.observe(speakerInterval, act)
		order, _ := sd.rank()
		out = append(out, slices.Clone(order))
	}
	return out
}

func firstTick(ranks [][]string, want func([]string) bool) int {
	for i, r := range ranks {
		if want(r) {
			return i
		}
	}
	return -1
}

func TestSpeakerStartsWithin600ms(t *testing.T) {
	sd := newSpeakerDetector()
	ranks := run(sd, 10, map[string]float64{"a": 0.8, "b": 0})
	at := firstTick(ranks, func(r []string) bool { return slices.Equal(r, []string{"a"}) })
	if at < 0 || time.Duration(at+1)*speakerInterval > 600*time.Millisecond {
		t.Fatalf("ranks %v: want a alone within 600 ms", ranks)
	}
	t.Logf("a speaker is ranked %v after starting", time.Duration(at+1)*speakerInterval)
}

func TestCoughIsNoSpeaker(t *testing.T) {
	sd := newSpeakerDetector()
	run(sd, 20, map[string]float64{"a": 0.8, "b": 0})
	// b coughs for 200 ms while a goes on.
	ranks := run(sd, 1, map[string]float64{"a": 0.8, "b": 1})
	ranks = append(ranks, run(sd, 10, map[string]float64{"a": 0.8, "b": 0})...)
	for _, r := range ranks {
		if !slices.Equal(r, []string{"a"}) {
			t.Fatalf("ranks %v: a cough made a speaker change", ranks)
		}
	}
}

func TestLouderSpeakerTakesTheLead(t *testing.T) {
	sd := newSpeakerDetector()
	run(sd, 20, map[string]float64{"a": 0.6, "b": 0})
	ranks := run(sd, 20, map[string]float64{"a": 0, "b": 1})
	at := firstTick(ranks, func(r []string) bool { return len(r) > 0 && r[0] == "b" })
	if at < 0 {
		t.Fatalf("ranks %v: b never took the lead", ranks)
	}
	if last := ranks[len(ranks)-1]; !slices.Equal(last, []string{"b"}) {
		t.Errorf("after a stopped for 4 s: %v, want b alone", last)
	}
}

func TestEqualVoicesDoNotSwap(t *testing.T) {
	sd := newSpeakerDetector()
	run(sd, 20, map[string]float64{"a": 0.8, "b": 0})
	// b joins at about a's level, now a little louder, now a little softer.
	changes := 0
	for i := range 40 {
		act := map[string]float64{"a": 0.8, "b": 0.82}
		if i%2 == 1 {
			act["b"] = 0.78
		}
		sd.observe(speakerInterval, act)
		if _, changed := sd.rank(); changed {
			changes++
		}
	}
	if changes > 1 {
		t.Errorf("%d ranking changes between two equal voices; want b added once", changes)
	}
}

func TestSilenceEmptiesTheRanking(t *testing.T) {
	sd := newSpeakerDetector()
	run(sd, 20, map[string]float64{"a": 0.8})
	ranks := run(sd, 30, map[string]float64{}) // a muted: no activity reported
	if last := ranks[len(ranks)-1]; len(last) != 0 {
		t.Fatalf("after 6 s of silence: %v, want nobody", last)
	}
	if len(sd.energy) != 0 {
		t.Errorf("the detector still holds %v", sd.energy)
	}
}

func TestActivity(t *testing.T) {
	for _, c := range []struct {
		voiced, total uint64
		want          float64
	}{{0, 0, 0}, {0, 50, 0}, {10, 50, 0.4}, {25, 50, 1}, {50, 50, 1}} {
		if got := activity(c.voiced, c.total); got != c.want {
			t.Errorf("activity(%d of %d) = %v, want %v", c.voiced, c.total, got, c.want)
		}
	}
}

// The forwarding loop's cost of reading an audio packet's level.
func BenchmarkAudioLevel(b *testing.B) {
	var h rtp.Header
	raw := []byte{0x90, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x10, 0x80 | 30, 0, 0}
	if _, err := h.Unmarshal(raw); err != nil {
		b.Fatal(err)
	}
	var levels audioLevels
	b.ReportAllocs()
	for b.Loop() {
		levels.add(&h, 1)
	}
	if a, ok := levels.take(); !ok || a != 1 {
		b.Fatalf("activity %v, %v; want 1 (every packet voiced)", a, ok)
	}
}
