package sfu

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// ladder is one video's options at these costs, its layers numbered by position.
func ladder(rates ...int) []option {
	opts := make([]option, len(rates))
	for i, r := range rates {
		opts[i] = option{layer: i, temporal: allTemporal, bitrate: r}
	}
	return opts
}

func TestAllocate(t *testing.T) {
	cam4 := ladder(100, 150, 200, 250)
	tests := []struct {
		name   string
		budget int
		opts   [][]option
		screen []bool
		want   []int
	}{
		{"nothing fits: all paused", 99, [][]option{ladder(100, 200), ladder(150)}, nil, []int{-1, -1}},
		{"negative budget (audio ate it)", -50_000, [][]option{ladder(100), ladder(100)}, nil, []int{-1, -1}},
		{"no options: paused, costs nothing", 100, [][]option{nil, ladder(100)}, nil, []int{-1, 0}},
		{"lowest options fit exactly", 250, [][]option{ladder(100, 200), ladder(150, 300)}, nil, []int{0, 0}},
		{"one short of the lowest options: the first climbs instead", 249, [][]option{ladder(100, 200), ladder(150, 300)},
			nil, []int{1, -1}},
		{"a dear first video does not block a cheap later one", 200, [][]option{ladder(500), ladder(100)}, nil,
			[]int{-1, 0}},
		{"screen first though listed last", 550, [][]option{ladder(100, 200, 300), ladder(100, 500)},
			[]bool{false, true}, []int{-1, 1}},
		{"camera gets what the screen leaves", 650, [][]option{ladder(100, 200, 300), ladder(100, 500)},
			[]bool{false, true}, []int{0, 1}},
		{"round robin: one step each per round", 370, [][]option{cam4, cam4}, nil, []int{2, 1}},
		{"round robin: exact fit of two steps each", 400, [][]option{cam4, cam4}, nil, []int{2, 2}},
		{"round robin: one short", 399, [][]option{cam4, cam4}, nil, []int{2, 1}},
		{"round robin: top of the ladder", 500, [][]option{cam4, cam4}, nil, []int{3, 3}},
		{"round robin: more than enough", 10_000, [][]option{cam4, cam4}, nil, []int{3, 3}},
		{"three videos share", 700, [][]option{ladder(100, 200, 300), ladder(100, 200, 300), ladder(100, 200, 300)},
			nil, []int{2, 1, 1}},
		{"a video stuck on a big step leaves the rest to others", 400, [][]option{ladder(100, 1000), ladder(100, 150, 200)},
			nil, []int{0, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			screen := tc.screen
			if screen == nil {
				screen = make([]bool, len(tc.opts))
			}
			if got := allocate(tc.budget, tc.opts, screen); !slices.Equal(got, tc.want) {
				t.Errorf("allocate(%d) = %v, want %v", tc.budget, got, tc.want)
			}
		})
	}
}

// TestAllocateProperties checks random inputs for what allocate promises:
// within budget, nothing left that fits a further step, screens before
// cameras, and equal videos within one step of each other.
func TestAllocateProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := 1 + rng.IntN(6)
		opts := make([][]option, n)
		screen := make([]bool, n)
		shared := randomLadder(rng, true)
		for i := range opts {
			opts[i] = shared
			if rng.IntN(3) == 0 || len(shared) == 0 {
				opts[i] = randomLadder(rng, false)
			}
			screen[i] = rng.IntN(4) == 0
		}
		budget := rng.IntN(4_000_000) - 100_000
		got := allocate(budget, opts, screen)

		left := budget
		for i, c := range got {
			if c >= 0 {
				left -= opts[i][c].bitrate
			}
		}
		if left < min(budget, 0) || (budget < 0 && left != budget) {
			t.Fatalf("allocate(%d, %v) = %v: over budget by %d", budget, opts, got, -left)
		}
		for i, c := range got {
			next := c + 1
			if next >= len(opts[i]) {
				continue
			}
			step := opts[i][next].bitrate
			if c >= 0 {
				step -= opts[i][c].bitrate
			}
			if step <= left {
				t.Fatalf("allocate(%d, %v) = %v: video %d could take its next step (%d) from the %d left",
					budget, opts, got, i, step, left)
			}
		}
		// Screens are served before cameras see any budget: what the cameras
		// took could not have paid for any screen's next step.
		cameras := 0
		for i, c := range got {
			if !screen[i] && c >= 0 {
				cameras += opts[i][c].bitrate
			}
		}
		for i, c := range got {
			if !screen[i] || c+1 >= len(opts[i]) {
				continue
			}
			step := opts[i][c+1].bitrate
			if c >= 0 {
				step -= opts[i][c].bitrate
			}
			if step <= left+cameras {
				t.Fatalf("allocate(%d, %v, %v) = %v: screen %d could take its next step (%d) but cameras got %d",
					budget, opts, screen, got, i, step, cameras)
			}
		}
		for i := range got {
			for j := i + 1; j < len(got); j++ {
				same := screen[i] == screen[j] && len(shared) > 0 && len(opts[i]) > 0 && len(opts[j]) > 0 &&
					&opts[i][0] == &shared[0] && &opts[j][0] == &shared[0]
				if same && got[i] >= 0 && got[j] >= 0 && (got[i]-got[j] > 1 || got[i] < got[j]) {
					t.Fatalf("allocate(%d, %v) = %v: equal videos %d and %d not shared round robin",
						budget, opts, got, i, j)
				}
			}
		}
	}
}

// randomLadder is a rising ladder; with convex, each step costs at least as
// much as the one before, as a video's layers do, which is what makes a
// round-robin share come out within one step.
func randomLadder(rng *rand.Rand, convex bool) []option {
	steps := make([]int, rng.IntN(6))
	for i := range steps {
		steps[i] = 1 + rng.IntN(800_000)
	}
	if convex && len(steps) > 1 {
		slices.Sort(steps[1:])
	}
	var rates []int
	r := 0
	for _, s := range steps {
		r += s
		rates = append(rates, r)
	}
	return ladder(rates...)
}

type opt struct {
	layer    int
	temporal uint8
}

func optsOf(opts []option) []opt {
	var o []opt
	for _, x := range opts {
		o = append(o, opt{x.layer, x.temporal})
	}
	return o
}

func TestTrackOptions(t *testing.T) {
	var (
		qT0, qT1, qT2 = opt{0, 0}, opt{0, 1}, opt{0, 2}
		q, h, f       = opt{0, allTemporal}, opt{1, allTemporal}, opt{2, allTemporal}
		hT0, hT1, hT2 = opt{1, 0}, opt{1, 1}, opt{1, 2}
	)
	tests := []struct {
		name     string
		layers   []int // present layers
		temporal bool  // the lowest carries temporal layer ids
		hWidth   uint16
		maxWidth int
		want     []opt
	}{
		{"temporal, any size", []int{0, 1, 2}, true, 0, 0, []opt{qT0, qT1, qT2, h, f}},
		{"temporal, q-sized tile", []int{0, 1, 2}, true, 0, 320, []opt{qT0, qT1, qT2}},
		{"temporal, h-sized tile", []int{0, 1, 2}, true, 0, 640, []opt{qT0, qT1, qT2, h}},
		{"h just too wide (638 < 640)", []int{0, 1, 2}, true, 0, 511, []opt{qT0, qT1, qT2}},
		{"h just fits (5/4 of 512 is 640)", []int{0, 1, 2}, true, 0, 512, []opt{qT0, qT1, qT2, h}},
		{"f just too wide", []int{0, 1, 2}, true, 0, 1023, []opt{qT0, qT1, qT2, h}},
		{"f just fits", []int{0, 1, 2}, true, 0, 1024, []opt{qT0, qT1, qT2, h, f}},
		{"tile larger than every layer", []int{0, 1, 2}, true, 0, 4000, []opt{qT0, qT1, qT2, h, f}},
		{"tile smaller than q: q still offered", []int{0, 1, 2}, true, 0, 100, []opt{qT0, qT1, qT2}},
		{"no temporal layers", []int{0, 1, 2}, false, 0, 0, []opt{q, h, f}},
		{"single layer", []int{0}, true, 0, 0, []opt{qT0, qT1, qT2}},
		{"no q: h carries the frame rates", []int{1, 2}, true, 0, 0, []opt{hT0, hT1, hT2, f}},
		{"h's keyframe says 960 wide: too wide for 640", []int{0, 1, 2}, true, 960, 640, []opt{qT0, qT1, qT2}},
		{"h's keyframe says 800 wide: fits 640", []int{0, 1, 2}, true, 800, 640, []opt{qT0, qT1, qT2, h}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fw := newFwd(t, fwdConfig{layers: maxLayers, bind: true})
			for i := range maxLayers {
				if !slices.Contains(tc.layers, i) {
					fw.track.layers[i].Store(nil)
				}
			}
			low := fw.layer(tc.layers[0])
			low.temporal.Store(tc.temporal)
			if tc.hWidth != 0 {
				// The size comes from the layer's own keyframe.
				fw.src[1].width = tc.hWidth
				fw.frames(1, 1, 1, true)
				if w := fw.layer(1).width.Load(); w != uint32(tc.hWidth) {
					t.Fatalf("h width %d after its keyframe, want %d", w, tc.hWidth)
				}
			}
			opts := fw.track.options(fw.clock.Now(), tc.maxWidth)
			if got := optsOf(opts); !slices.Equal(got, tc.want) {
				t.Fatalf("options(%d) = %v, want %v", tc.maxWidth, got, tc.want)
			}
			for i, o := range opts {
				// Nothing measured yet: every option costs its layer's nominal rate.
				if o.bitrate != nominalBitrate[o.layer] {
					t.Errorf("option %d costs %d, want nominal %d", i, o.bitrate, nominalBitrate[o.layer])
				}
			}
		})
	}
}

// TestTrackOptionsMeasured: measured temporal layers make the frame-rate
// options of q a rising ladder that includes the bytes without a TID; a
// layer that stopped costs its nominal rate.
func TestTrackOptionsMeasured(t *testing.T) {
	fw := newFwd(t, fwdConfig{layers: 3, bind: true})
	q, h, f := fw.layer(0), fw.layer(1), fw.layer(2)
	q.temporal.Store(true)
	since := fw.clock.Now()
	if opts := fw.track.options(since, 0); opts[0].bitrate != nominalBitrate[0] {
		t.Fatalf("first measurement: q costs %d, want nominal %d", opts[0].bitrate, nominalBitrate[0])
	}
	now := since.Add(rateWindow + 500*time.Millisecond)
	q.lastPacket.Store(now.UnixNano())
	h.lastPacket.Store(now.Add(-2 * liveTimeout).UnixNano())
	h.bytes[3].Store(1_000_000) // long ago
	f.lastPacket.Store(now.UnixNano())
	qBytes := [4]uint64{12_500, 3_750, 2_500, 625}
	for tid, n := range qBytes {
		q.bytes[tid].Store(n)
	}
	f.bytes[3].Store(250_000)

	opts := fw.track.options(now, 0)
	// rates divides by the time since its last measurement.
	secs := now.Sub(since).Seconds()
	rate := func(n uint64) int { return int(float64(n) * 8 / secs) }
	q0 := rate(qBytes[0]) + rate(qBytes[3])
	want := []int{q0, q0 + rate(qBytes[1]), q0 + rate(qBytes[1]) + rate(qBytes[2]), nominalBitrate[1], rate(250_000)}
	if got := optsOf(opts); !slices.Equal(got, []opt{{0, 0}, {0, 1}, {0, 2}, {1, allTemporal}, {2, allTemporal}}) {
		t.Fatalf("options %v", got)
	}
	for i, o := range opts {
		if o.bitrate != want[i] {
			t.Errorf("option %d (%d/%d) costs %d, want %d", i, o.layer, o.temporal, o.bitrate, want[i])
		}
	}
}
