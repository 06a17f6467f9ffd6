package sfu

import (
	"slices"
	"testing"
	"time"
)

func TestDynacastHold(t *testing.T) {
	s := newDynacastState(t0)
	steps := []struct {
		at     time.Duration
		needed int
		active int
		tell   bool
	}{
		{0, 1, 3, true},                               // a new track keeps every layer while tiles are reported
		{time.Second, 1, 3, false},                    // unchanged: nothing to tell
		{dynacastHold - 1, 1, 3, false},               // h and f still held
		{dynacastHold, 1, 1, true},                    // off once unneeded for dynacastHold
		{dynacastHold + time.Millisecond, 3, 3, true}, // on at once when needed
		{2 * dynacastHold, 2, 3, false},
		{3*dynacastHold + time.Millisecond, 2, 2, true},
		{3*dynacastHold + time.Millisecond + dynacastHold, 0, 0, true}, // nobody has watched for dynacastHold: all off
	}
	for _, st := range steps {
		active, tell := s.update(t0.Add(st.at), st.needed)
		if active != st.active || tell != st.tell {
			t.Errorf("at %v needing %d: active %d tell %v, want %d %v", st.at, st.needed, active, tell, st.active, st.tell)
		}
	}
}

func TestDynacastNeededLayers(t *testing.T) {
	widths := [maxLayers]int{320, 640, 1280}
	tests := []struct {
		name      string
		simulcast bool
		tiles     []tile
		want      int
	}{
		{"nobody", true, nil, 0},
		{"nobody visible", true, []tile{{maxWidth: 1280}}, 0},
		{"a small tile", true, []tile{{maxWidth: 320, visible: true}}, 1},
		{"the largest tile counts", true, []tile{{maxWidth: 320, visible: true}, {maxWidth: 640, visible: true}}, 2},
		{"hidden large tile does not", true, []tile{{maxWidth: 320, visible: true}, {maxWidth: 1280}}, 1},
		{"no size limit", true, []tile{{visible: true}}, 3},
		{"not simulcast", false, []tile{{visible: true}}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := neededLayers(tc.simulcast, widths, tc.tiles); got != tc.want {
				t.Errorf("neededLayers = %d, want %d", got, tc.want)
			}
		})
	}
	if got := publishLayers(2, true); !slices.Equal(got, []string{"q", "h"}) {
		t.Errorf("publishLayers(2, simulcast) = %v", got)
	}
	if got := publishLayers(3, false); !slices.Equal(got, []string{"q"}) {
		t.Errorf("publishLayers(3, single layer) = %v, want [q]: on", got)
	}
	if got := publishLayers(0, true); got != nil {
		t.Errorf("publishLayers(0) = %v, want none", got)
	}
}

// A node's demand names layers; the publisher encodes up to the highest.
func TestLayerSet(t *testing.T) {
	s := LayerSet(0).with(0).with(2).with(-1).with(maxLayers)
	if !s.Has(0) || s.Has(1) || !s.Has(2) || s.Has(-1) || s.Has(maxLayers) {
		t.Errorf("set %03b: want layers 0 and 2 only", s)
	}
	if s.Count() != 3 || LayerSet(1).Count() != 1 || LayerSet(0).Count() != 0 {
		t.Errorf("counts %d, %d, %d: want 3, 1, 0", s.Count(), LayerSet(1).Count(), LayerSet(0).Count())
	}
}
