package sfu

import (
	"testing"
	"time"
)

// The allocator's policy with synthetic snapshots: one subscriber's videos
// and link, a round every allocationInterval.

var t0 = time.Unix(1_700_000_000, 0)

// camera is a video whose layers cost 100k, 300k and 1M.
func camera(id string) videoSnapshot {
	return videoSnapshot{down: &DownTrack{}, id: id, opts: ladder(100_000, 300_000, 1_000_000), bound: true}
}

// rounds runs the allocator from 'from' for d, one round per
// allocationInterval, and returns the option video 0 had after each.
func rounds(al *allocator, from time.Time, d time.Duration, link linkSnapshot, videos ...videoSnapshot) (options []int, end time.Time) {
	now := from
	for ; now.Sub(from) < d; now = now.Add(allocationInterval) {
		p := al.plan(now, link, videos)
		for _, v := range p.videos {
			if v.down == videos[0].down {
				options = append(options, v.option)
			}
		}
	}
	return options, now
}

// firstAt is the round in which options first reaches want, -1 never.
func firstAt(options []int, want int) int {
	for i, o := range options {
		if o == want {
			return i
		}
	}
	return -1
}

func TestPlanHysteresis(t *testing.T) {
	al := newAllocator()
	cam := camera("a")
	wide := linkSnapshot{keep: 3_000_000, up: 3_000_000}
	// The first round that is a hold after the one that started the clock.
	after := func(hold time.Duration) int { return int((hold + allocationInterval - 1) / allocationInterval) }

	// A new subscription starts on the lowest layer, then climbs one layer
	// per upgradeHold (the first round only starts the clock).
	opts, now := rounds(al, t0, 10*time.Second, wide, cam)
	if opts[0] != 0 {
		t.Fatalf("started on option %d, want the lowest layer", opts[0])
	}
	up1, up2 := firstAt(opts, 1), firstAt(opts, 2)
	if up1 != after(upgradeHold) || up2-up1 != after(upgradeHold) {
		t.Fatalf("options %v: want a step every %v", opts, upgradeHold)
	}

	// The link narrows: down at once, to what keep allows (300k costs
	// more than 1.1 times the 250k budget, 100k does not).
	narrow := linkSnapshot{keep: 250_000, up: 250_000}
	if p := al.plan(now, narrow, []videoSnapshot{cam}); p.videos[0].option != 0 || p.videos[0].layer != 0 {
		t.Fatalf("after narrowing: %+v, want option 0 at once", p.videos[0])
	}
	// A downgrade within flapWindow of the upgrade doubles the hold.
	now = now.Add(allocationInterval)
	opts, now = rounds(al, now, 10*time.Second, wide, cam)
	if up := firstAt(opts, 1); up != after(2*upgradeHold) {
		t.Errorf("options %v after a flap: want the next step after %v", opts, 2*upgradeHold)
	}
	// After a calm spell of twice maxUpgradeHold the hold is back to its start.
	rounds(al, now, 10*time.Second, wide, cam)
	al.plan(now.Add(10*time.Second), narrow, []videoSnapshot{cam})
	calm := now.Add(10*time.Second + 2*maxUpgradeHold + time.Second)
	opts, _ = rounds(al, calm, 5*time.Second, wide, cam)
	if up := firstAt(opts, 1); up != after(upgradeHold) {
		t.Errorf("options %v after a calm spell: want the next step after %v", opts, upgradeHold)
	}
}

func TestPlanProbedUpgradesAtOnce(t *testing.T) {
	al := newAllocator()
	cam := camera("a")
	link := linkSnapshot{keep: 3_000_000, up: 3_000_000}
	al.plan(t0, link, []videoSnapshot{cam})
	link.probed = true
	if p := al.plan(t0.Add(allocationInterval), link, []videoSnapshot{cam}); p.videos[0].option != 2 {
		t.Errorf("after a probe: option %d, want the top at once", p.videos[0].option)
	}
}

func TestPlanPauseAndResume(t *testing.T) {
	al := newAllocator()
	cam := camera("a")
	// Audio eats the budget: nothing fits, the video is paused.
	starved := linkSnapshot{keep: 120_000, up: 120_000, audio: 1}
	p := al.plan(t0, starved, []videoSnapshot{cam})
	if v := p.videos[0]; v.option != -1 || v.layer != -1 || v.temporal != allTemporal {
		t.Fatalf("starved: %+v, want paused", v)
	}
	// Hidden: paused whatever the link.
	hidden := cam
	hidden.opts = nil
	if p := al.plan(t0.Add(allocationInterval), linkSnapshot{keep: 1e7, up: 1e7}, []videoSnapshot{hidden}); p.videos[0].layer != -1 {
		t.Fatalf("hidden: %+v, want paused", p.videos[0])
	}
	// Shown again with room: resumed at once, on the lowest layer, as a
	// new subscription starts (a tab brought back to the front).
	opts, now := rounds(al, t0.Add(time.Second), 5*time.Second, linkSnapshot{keep: 200_000, up: 200_000}, cam)
	if opts[0] != 0 || opts[len(opts)-1] != 0 {
		t.Errorf("shown again: options %v, want option 0 from the first round", opts)
	}
	// Shown again without room: still paused.
	al.plan(now, starved, []videoSnapshot{hidden})
	if p := al.plan(now.Add(allocationInterval), starved, []videoSnapshot{cam}); p.videos[0].option != -1 {
		t.Errorf("shown again on a starved link: %+v, want paused", p.videos[0])
	}
	// Paused for bandwidth while visible, then room: resumed after the
	// hold, so that a link at the edge does not flap.
	al = newAllocator()
	al.plan(t0, starved, []videoSnapshot{cam})
	opts, _ = rounds(al, t0.Add(allocationInterval), 5*time.Second, linkSnapshot{keep: 200_000, up: 200_000}, cam)
	if at := firstAt(opts, 0); at < int(upgradeHold/allocationInterval) || opts[len(opts)-1] != 0 {
		t.Errorf("options %v: want a resume on option 0 after %v", opts, upgradeHold)
	}
}

func TestPlanProbe(t *testing.T) {
	link := linkSnapshot{keep: 500_000, up: 500_000}
	t.Run("held back: probe for the best option", func(t *testing.T) {
		al := newAllocator()
		cam := camera("a")
		rounds(al, t0, 3*time.Second, link, cam) // climbs to 300k, where 1M does not fit
		p := al.plan(t0.Add(3*time.Second), link, []videoSnapshot{cam})
		if p.videos[0].option != 1 {
			t.Fatalf("option %d, want 1", p.videos[0].option)
		}
		// 300k used, 700k more needed: (1M)*probeMargin/upgradeHeadroom,
		// capped at probeStep times the 500k known.
		if p.probe.d != cam.down || p.probe.need != 700_000 || p.probe.target != 1_000_000 || p.probe.rate != 700_000 {
			t.Errorf("probe %+v, want video a, need 700k, target 1M, padding 700k", p.probe)
		}
	})
	t.Run("new subscriber: from the start assumption, not from what it is sent", func(t *testing.T) {
		// A single-layer 1.95 Mbit/s camera does not fit the 600k a fresh
		// link is assumed to carry, so it starts paused and only audio
		// flows; the first probe doubles the assumption, not the audio.
		al := newAllocator()
		cam := videoSnapshot{down: &DownTrack{}, id: "a", opts: ladder(1_950_000), bound: true}
		fresh := linkSnapshot{keep: 600_000, up: 0, audio: 2}
		p := al.plan(t0, fresh, []videoSnapshot{cam})
		if p.videos[0].option != -1 {
			t.Fatalf("option %d, want paused", p.videos[0].option)
		}
		if p.probe.d != cam.down || p.probe.target != 1_200_000 {
			t.Errorf("probe %+v, want video a towards 1.2M (twice the 600k assumed)", p.probe)
		}
	})
	t.Run("climbing: no probe", func(t *testing.T) {
		al := newAllocator()
		if p := al.plan(t0, link, []videoSnapshot{camera("a")}); p.probe.d != nil {
			t.Errorf("probe %+v while an upgrade is pending", p.probe)
		}
	})
	t.Run("not bound: no probe", func(t *testing.T) {
		al := newAllocator()
		cam := camera("a")
		cam.bound = false
		rounds(al, t0, 3*time.Second, link, cam)
		if p := al.plan(t0.Add(3*time.Second), link, []videoSnapshot{cam}); p.probe.d != nil {
			t.Errorf("probe %+v for a down-track that cannot send", p.probe)
		}
	})
	t.Run("screen first", func(t *testing.T) {
		al := newAllocator()
		cam, screen := camera("a"), camera("b")
		screen.screen = true
		// Each at its lowest layer: both held back, the screen is probed for.
		tight := linkSnapshot{keep: 220_000, up: 220_000}
		p := al.plan(t0, tight, []videoSnapshot{cam, screen})
		if p.videos[0].down != screen.down || p.probe.d != screen.down {
			t.Errorf("order %v, probe %+v: want the screen first and probed for", p.videos, p.probe)
		}
		// Low padding is raised to a useful minimum.
		if p.probe.rate < 50_000 {
			t.Errorf("probe padding %d", p.probe.rate)
		}
	})
}

func TestPlanForgetsRemovedVideos(t *testing.T) {
	al := newAllocator()
	a, b := camera("a"), camera("b")
	al.plan(t0, linkSnapshot{keep: 1e7, up: 1e7}, []videoSnapshot{a, b})
	al.plan(t0.Add(allocationInterval), linkSnapshot{keep: 1e7, up: 1e7}, []videoSnapshot{b})
	if _, ok := al.state[a.down]; ok || len(al.state) != 1 {
		t.Errorf("state kept for %d videos, want only b's", len(al.state))
	}
}

func TestStreamNotice(t *testing.T) {
	var n streamNotice
	steps := []struct {
		paused bool
		layer  string
		tell   bool
	}{
		{false, "", false}, // not started: nothing to say yet
		{false, "q", true}, // started
		{false, "q", false},
		{false, "h", true},
		{true, "", true},
		{true, "", false},
		{false, "", true}, // resuming, not started yet
		{false, "q", true},
	}
	for i, s := range steps {
		if got := n.update(s.paused, s.layer); got != s.tell {
			t.Errorf("step %d (%v, %q): tell %v, want %v", i, s.paused, s.layer, got, s.tell)
		}
	}
	var first streamNotice
	if !first.update(true, "") {
		t.Error("paused before it started: not told")
	}
}

// When the link fits one video, the one whose publisher is speaking gets
// it, whatever the order of the track ids.
func TestPlanServesTheSpeakerFirst(t *testing.T) {
	al := newAllocator()
	a, b := camera("a"), camera("b")
	b.speaking = 1
	oneVideo := linkSnapshot{keep: 150_000, up: 150_000}
	p := al.plan(t0, oneVideo, []videoSnapshot{a, b})
	for _, v := range p.videos {
		if want := map[*DownTrack]int{a.down: -1, b.down: 0}[v.down]; v.option != want {
			t.Errorf("video %p: option %d, want %d (b is speaking)", v.down, v.option, want)
		}
	}
	// Without a speaker, the first by track id.
	b.speaking = 0
	p = newAllocator().plan(t0, oneVideo, []videoSnapshot{a, b})
	if p.videos[0].down != a.down || p.videos[0].option != 0 || p.videos[1].option != -1 {
		t.Errorf("no speaker: %+v, want a served", p.videos)
	}
}
