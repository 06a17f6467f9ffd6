package trunk

import (
	"slices"
	"testing"
	"time"
)

func TestGapTrackerNACKsAtOnceThenEvery20ms(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var g gapTracker
	for _, seq := range []uint16{1, 2, 3} {
		if g.push(seq, t0) {
			t.Fatalf("push(%d) in order reported a gap", seq)
		}
	}
	if !g.push(6, t0) {
		t.Fatal("push(6) after 3: no gap reported")
	}
	if got := g.due(nil, t0); !slices.Equal(got, []uint16{4, 5}) {
		t.Fatalf("due at once = %v, want [4 5]", got)
	}
	if got := g.due(nil, t0.Add(10*time.Millisecond)); len(got) != 0 {
		t.Fatalf("due after 10 ms = %v, want none", got)
	}
	if got := g.due(nil, t0.Add(20*time.Millisecond)); !slices.Equal(got, []uint16{4, 5}) {
		t.Fatalf("due after 20 ms = %v, want [4 5]", got)
	}
	g.push(4, t0.Add(25*time.Millisecond))
	if g.recovered != 1 || g.pending() != 1 {
		t.Fatalf("after 4 arrived: recovered %d pending %d, want 1 and 1", g.recovered, g.pending())
	}
	tries := 2
	for now := t0.Add(40 * time.Millisecond); g.pending() > 0; now = now.Add(nackInterval) {
		got := g.due(nil, now)
		if len(got) == 0 {
			continue
		}
		if !slices.Equal(got, []uint16{5}) {
			t.Fatalf("due = %v, want [5]", got)
		}
		tries++
	}
	if tries != nackTries {
		t.Errorf("5 was NACKed %d times, want %d", tries, nackTries)
	}
	if g.lost != 1 {
		t.Errorf("lost = %d, want 1", g.lost)
	}
	// A packet arriving after it was given up on changes nothing.
	g.push(5, t0.Add(time.Second))
	if g.lost != 1 || g.recovered != 1 {
		t.Errorf("late 5: lost %d recovered %d, want 1 and 1", g.lost, g.recovered)
	}
}

func TestGapTrackerWrapsAround(t *testing.T) {
	t0 := time.Unix(0, 0)
	var g gapTracker
	g.push(65534, t0)
	if !g.push(1, t0) {
		t.Fatal("65534 then 1: no gap")
	}
	if got := g.due(nil, t0); !slices.Equal(got, []uint16{65535, 0}) {
		t.Errorf("due = %v, want [65535 0]", got)
	}
	// An old packet from before the wrap is not a new highest.
	g.push(65533, t0)
	if g.highest != 1 {
		t.Errorf("highest = %d after a late packet, want 1", g.highest)
	}
}

func TestGapTrackerLargeJumpIsNotNACKed(t *testing.T) {
	t0 := time.Unix(0, 0)
	var g gapTracker
	g.push(10, t0)
	if g.push(10+maxGap+2, t0) {
		t.Error("a jump past maxGap reported a gap to NACK")
	}
	if g.lost != maxGap+1 || g.pending() != 0 {
		t.Errorf("lost %d pending %d, want %d and 0", g.lost, g.pending(), maxGap+1)
	}
}

func TestGapTrackerBoundsMissing(t *testing.T) {
	t0 := time.Unix(0, 0)
	var g gapTracker
	seq := uint16(0)
	g.push(seq, t0)
	for range 4 {
		seq += maxGap
		g.push(seq, t0)
	}
	if g.pending() != maxMissing {
		t.Errorf("pending %d, want the cap %d", g.pending(), maxMissing)
	}
	if want := uint64(4*(maxGap-1) - maxMissing); g.lost != want {
		t.Errorf("lost %d, want %d dropped past the cap", g.lost, want)
	}
}
