package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-sfu/switchboard/internal/client"
)

// Three Pion clients publish into one room; each must receive audio and
// video (starting at a keyframe) from both others, and when one leaves the
// others are told and its tracks end.
func TestConferenceForwardsEveryoneToEveryone(t *testing.T) {
	_, base := startServer(t)
	api, err := client.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var clients []*client.Client
	for i := range 3 {
		c, err := client.Join(ctx, api, wsURL(base), "conf", fmt.Sprintf("p%d", i), client.Options{Publish: true, VideoBitrate: 200_000})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}

	// got reports, for receiver r, how many packets of kind came from publisher p.
	got := func(r *client.Client, p *client.Client, kind string) (packets, keyframes int64) {
		for _, rec := range r.Received() {
			if rec.Participant == p.ID && rec.Kind == kind {
				return rec.Packets.Load(), rec.Keyframes.Load()
			}
		}
		return 0, 0
	}
	waitUntil(t, 15*time.Second, "every client to receive audio and video from every other", func() bool {
		for _, r := range clients {
			for _, p := range clients {
				if r == p {
					continue
				}
				audio, _ := got(r, p, "audio")
				video, keys := got(r, p, "video")
				if audio < 25 || video < 30 || keys < 1 {
					return false
				}
			}
		}
		return true
	})
	for _, r := range clients {
		for _, rec := range r.Received() {
			if rec.Participant == r.ID {
				t.Errorf("%s receives its own %s", r.ID, rec.Kind)
			}
		}
	}

	leaver := clients[2]
	leaver.Close()
	for _, r := range clients[:2] {
		m, err := r.WaitFor(ctx, "participant-left")
		if err != nil {
			t.Fatal(err)
		}
		if m.Participant == nil || m.Participant.ID != leaver.ID {
			t.Fatalf("participant-left names %+v, want %s", m.Participant, leaver.ID)
		}
	}
	waitUntil(t, 10*time.Second, "the leaver's tracks to end at the others", func() bool {
		for _, r := range clients[:2] {
			for _, rec := range r.Received() {
				if rec.Participant == leaver.ID && !rec.Ended.Load() {
					return false
				}
			}
		}
		return true
	})
	// The two who stayed still receive each other.
	a0, _ := got(clients[0], clients[1], "video")
	waitUntil(t, 5*time.Second, "media to keep flowing between the others", func() bool {
		n, _ := got(clients[0], clients[1], "video")
		return n > a0+30
	})
}
