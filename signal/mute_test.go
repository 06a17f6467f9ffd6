package signal_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/signal"
)

// A publisher that turns its camera off is shown muted to the others and
// costs them nothing downstream; turned on again, its video comes back
// with a keyframe.
func TestMuteStopsForwarding(t *testing.T) {
	s := newServer(t)
	pub := joinPion(t, s, "Pub")
	viewer := joinPion(t, s, "Viewer")
	receiving(t, viewer, pub.ID, "the viewer")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	if err := pub.Mute("video", true); err != nil {
		t.Fatal(err)
	}
	m, err := waitForAny(ctx, viewer, signal.TypeTrackMuted)
	if err != nil || m.Track == nil || !m.Track.Muted || m.Track.Kind != "video" || m.Track.Participant != pub.ID {
		t.Fatalf("track-muted: %+v, %v", m.Track, err)
	}
	video := func() (packets, keyframes int64) { return received(viewer, pub.ID, "video") }
	// What was in flight arrives first: wait until 200 ms pass without a
	// packet, then nothing more may come.
	for last, _ := video(); ; {
		time.Sleep(200 * time.Millisecond) // polling interval
		if p, _ := video(); p == last {
			break
		} else {
			last = p
		}
	}
	p0, _ := video()
	quiet := time.NewTimer(time.Second)
	<-quiet.C
	p1, k1 := video()
	t.Logf("muted: %d video packets in a second", p1-p0)
	if p1 != p0 {
		t.Errorf("%d video packets reached the viewer in the second after the camera was turned off", p1-p0)
	}
	// A newcomer sees the track as muted in joined.
	late := s.dial(t)
	jl := late.join("r", "Late")
	if !jsonHasMuted(t, jl) {
		t.Errorf("joined tracks %s: the video is not marked muted", jl.Tracks)
	}

	unmuted := time.Now()
	if err := pub.Mute("video", false); err != nil {
		t.Fatal(err)
	}
	if m, err := waitForAny(ctx, viewer, signal.TypeTrackMuted); err != nil || m.Track.Muted {
		t.Fatalf("track-muted after unmute: %+v, %v", m.Track, err)
	}
	for {
		p, k := video()
		if p > p1 && k > k1 {
			t.Logf("video back with a keyframe %v after the unmute", time.Since(unmuted).Round(time.Millisecond))
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no video with a keyframe after the unmute (%d packets, %d keyframes)", p-p1, k-k1)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func jsonHasMuted(t *testing.T, m msg) bool {
	t.Helper()
	var tracks []struct {
		Kind  string `json:"kind"`
		Muted bool   `json:"muted"`
	}
	if err := json.Unmarshal(m.Tracks, &tracks); err != nil {
		t.Fatal(err)
	}
	for _, tr := range tracks {
		if tr.Kind == "video" && tr.Muted {
			return true
		}
	}
	return false
}
