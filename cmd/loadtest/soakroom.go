package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-sfu/switchboard/internal/client"
	"github.com/switchboard-sfu/switchboard/signal"
)

// soakRoom is the call a soak runs: publishers and viewer slots, and the
// churn applied to them. Joining, leaving and sending happen outside mu;
// mu guards which client holds each place and what was counted.
type soakRoom struct {
	cfg             *soakConfig
	pubAPI, viewAPI *webrtc.API
	auth            *signal.Auth

	mu       sync.Mutex
	pubs     []*client.Client // nil while restarting
	viewers  []*viewerSlot
	seq      int // numbers client names, so that each join is a new one
	replaced int // viewers killed and replaced
	restarts int // publishers that left and joined again
	failures []string
}

// viewerSlot is one viewer place in the room; a replaced viewer's
// successor takes the same slot (and CSV column).
type viewerSlot struct {
	c        *client.Client // nil while being replaced
	name     string
	joinedAt time.Time
	// goneTracks and goneParticipants come from signaling: a track of a
	// publisher who left is no longer one to show.
	goneTracks, goneParticipants map[string]bool
	// anchor is the video the viewer never pauses (see rotateLayers).
	anchor string
	// frames is the video frames counted at the last check, lastFrame when
	// that count last rose (or there was nothing to receive).
	frames    int64
	checkedAt time.Time
	lastFrame time.Time
	stalled   bool
}

// tileSizes are what a viewer says it shows each video at; 0 pauses it.
var tileSizes = [][2]int{{0, 0}, {320, 180}, {640, 360}, {1280, 720}}

// firstMediaTimeout is how long a viewer may have no video track at all
// while publishers are in the room: joining, then negotiating each
// publisher's tracks, takes about a second on loopback.
const firstMediaTimeout = 10 * time.Second

func (r *soakRoom) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// join adds one client to the room: a simulcast publisher (once its media
// flows) or a viewer on the lossy API.
func (r *soakRoom) join(ctx context.Context, publish bool) (*client.Client, string, error) {
	r.mu.Lock()
	r.seq++
	name := fmt.Sprintf("viewer%d", r.seq)
	if publish {
		name = fmt.Sprintf("pub%d", r.seq)
	}
	r.mu.Unlock()
	opts := client.Options{Publish: publish, Simulcast: true, VideoBitrate: int(r.cfg.bitrate), FPS: r.cfg.fps}
	if r.auth != nil {
		var err error
		opts.Token, err = r.auth.Mint(signal.Grant{Identity: r.cfg.roomPrefix + "-" + name, Name: name,
			Room: r.cfg.room(0), Publish: publish, Subscribe: true}, 24*time.Hour)
		if err != nil {
			return nil, name, err
		}
	}
	api := r.viewAPI
	if publish {
		api = r.pubAPI
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.joinTimeout)
	defer cancel()
	c, err := client.Join(ctx, api, r.cfg.wsURL(), r.cfg.room(0), name, opts)
	if err == nil && publish {
		select {
		case <-c.PublisherConnected():
		case <-ctx.Done():
			c.Close()
			c, err = nil, fmt.Errorf("publisher connection: %w", ctx.Err())
		}
	}
	if err != nil {
		return nil, name, fmt.Errorf("%s: %w", name, err)
	}
	return c, name, nil
}

// addPublisher joins a publisher into place i.
func (r *soakRoom) addPublisher(ctx context.Context, i int) error {
	c, name, err := r.join(ctx, true)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.pubs[i] = c
	r.mu.Unlock()
	go r.watch(c, name, func() bool { return r.pubs[i] == c }, nil)
	return nil
}

// addViewer joins a viewer into slot i.
func (r *soakRoom) addViewer(ctx context.Context, i int) error {
	c, name, err := r.join(ctx, false)
	if err != nil {
		return err
	}
	now := time.Now()
	v := &viewerSlot{c: c, name: name, joinedAt: now, checkedAt: now, lastFrame: now,
		goneTracks: map[string]bool{}, goneParticipants: map[string]bool{}}
	r.mu.Lock()
	r.viewers[i] = v
	r.mu.Unlock()
	go r.watch(c, name, func() bool { return r.viewers[i] == v }, v)
	return nil
}

// watch reads c's signaling messages until its connection ends: a viewer
// learns which tracks are gone, and a connection that ends while the
// client still holds its place was ended by the server, a failure.
func (r *soakRoom) watch(c *client.Client, name string, holds func() bool, v *viewerSlot) {
	for {
		select {
		case m := <-c.Messages:
			if v == nil {
				continue
			}
			r.mu.Lock()
			switch {
			case m.Type == "track-unpublished" && m.Track != nil:
				v.goneTracks[m.Track.ID] = true
			case m.Type == "participant-left" && m.Participant != nil:
				v.goneParticipants[m.Participant.ID] = true
			}
			r.mu.Unlock()
		case <-c.Gone():
			r.mu.Lock()
			unexpected := holds()
			r.mu.Unlock()
			if unexpected {
				r.fail("the server ended %s's signaling connection", name)
			}
			return
		}
	}
}

// liveVideos are the video tracks a viewer receives now, sorted.
func (v *viewerSlot) liveVideos() []string {
	var ids []string
	for id, rc := range v.c.Received() {
		if rc.Kind == "video" && !rc.Ended.Load() && !v.goneTracks[id] && !v.goneParticipants[rc.Participant] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// rotateLayers gives every viewer a new random size for each video it
// receives, so that the server switches layers and pauses and resumes
// videos all the time. One video per viewer, its anchor, only changes size
// and is never paused: a viewer always has a video it should be decoding,
// and a video that stays visible is what a stall is judged on (a video
// resumed a moment ago may wait for its publisher to restart a layer).
func (r *soakRoom) rotateLayers(rng *rand.Rand) {
	type send struct {
		c   *client.Client
		msg []byte
	}
	var sends []send
	r.mu.Lock()
	for _, v := range r.viewers {
		if v == nil || v.c == nil {
			continue
		}
		ids := v.liveVideos()
		if len(ids) == 0 {
			continue
		}
		if !slices.Contains(ids, v.anchor) { // its publisher left: another one
			v.anchor = ids[rng.IntN(len(ids))]
		}
		for _, id := range ids {
			size := tileSizes[rng.IntN(len(tileSizes))]
			if id == v.anchor {
				size = tileSizes[1+rng.IntN(len(tileSizes)-1)]
			}
			b, _ := json.Marshal(map[string]any{"type": "track-settings", "trackId": id, "width": size[0], "height": size[1]})
			sends = append(sends, send{v.c, b})
		}
	}
	r.mu.Unlock()
	for _, s := range sends {
		_ = s.c.SendRaw(s.msg) // a viewer being replaced may be gone: no matter
	}
}

// replaceViewer closes slot i's viewer abruptly, as a crashed tab does (no
// leave), and joins a new one in its place.
func (r *soakRoom) replaceViewer(ctx context.Context, i int) {
	r.mu.Lock()
	old := r.viewers[i]
	r.viewers[i] = nil
	r.mu.Unlock()
	if old != nil && old.c != nil {
		old.c.Abort()
	}
	if err := r.addViewer(ctx, i); err != nil {
		if ctx.Err() == nil {
			r.fail("a replacement viewer could not join: %v", err)
		}
		return
	}
	r.mu.Lock()
	r.replaced++
	r.mu.Unlock()
}

// restartPublisher makes publisher i leave and join again.
func (r *soakRoom) restartPublisher(ctx context.Context, i int) {
	r.mu.Lock()
	old := r.pubs[i]
	r.pubs[i] = nil
	r.mu.Unlock()
	if old != nil {
		leaveAndClose(old)
	}
	if err := r.addPublisher(ctx, i); err != nil {
		if ctx.Err() == nil {
			r.fail("a restarting publisher could not join again: %v", err)
		}
		return
	}
	r.mu.Lock()
	r.restarts++
	r.mu.Unlock()
}

// churn rotates layers every -layer-interval, replaces a random viewer
// every -kill-interval and restarts the publishers in turn every
// -restart-interval, until ctx ends.
func (r *soakRoom) churn(ctx context.Context) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	tick := func(d time.Duration) <-chan time.Time {
		if d <= 0 {
			return nil // off
		}
		return time.NewTicker(d).C
	}
	layers, kill, restart := tick(r.cfg.layerEvery), tick(r.cfg.killEvery), tick(r.cfg.restartEvery)
	var wg sync.WaitGroup
	defer wg.Wait()
	// Joins take a second or more: they run beside the layer rotation,
	// one replacement and one restart at a time.
	busyV, busyP := make(chan struct{}, 1), make(chan struct{}, 1)
	next := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-layers:
			r.rotateLayers(rng)
		case <-kill:
			i := rng.IntN(len(r.viewers))
			select {
			case busyV <- struct{}{}:
				wg.Go(func() { r.replaceViewer(ctx, i); <-busyV })
			default:
			}
		case <-restart:
			i := next
			next = (next + 1) % len(r.pubs)
			select {
			case busyP <- struct{}{}:
				wg.Go(func() { r.restartPublisher(ctx, i); <-busyP })
			default:
			}
		}
	}
}

// checkViewers returns each viewer slot's video frames per second since
// the last check, and fails a viewer that stopped decoding: no new frame
// for -stall while it had a visible video, or no video at all for
// firstMediaTimeout while publishers were in the room.
func (r *soakRoom) checkViewers(now time.Time) []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	pubsUp := 0
	for _, p := range r.pubs {
		if p != nil {
			pubsUp++
		}
	}
	fps := make([]float64, len(r.viewers))
	for i, v := range r.viewers {
		if v == nil || v.c == nil {
			fps[i] = math.NaN()
			continue
		}
		var frames int64
		for _, rc := range v.c.Received() {
			if rc.Kind == "video" {
				frames += rc.Frames.Load()
			}
		}
		fps[i] = float64(frames-v.frames) / now.Sub(v.checkedAt).Seconds()
		live := len(v.liveVideos())
		if frames > v.frames || (live == 0 && pubsUp == 0) {
			v.lastFrame = now
		}
		v.frames, v.checkedAt = frames, now
		limit := r.cfg.stall
		if live == 0 {
			limit = firstMediaTimeout
		}
		if quiet := now.Sub(v.lastFrame); quiet > limit && !v.stalled {
			v.stalled = true
			what := "decoded no frame"
			if live == 0 {
				what = "received no video"
			}
			r.failures = append(r.failures, fmt.Sprintf("viewer %s (slot %d) %s for %.0f s, %.0f s after joining",
				v.name, i, what, quiet.Seconds(), now.Sub(v.joinedAt).Seconds()))
		}
	}
	return fps
}

// leave closes every client with a leave, at once, and returns how many
// viewers were replaced and publishers restarted, and the failures.
func (r *soakRoom) leave() (replaced, restarts int, failures []string) {
	r.mu.Lock()
	var all []*client.Client
	for i, p := range r.pubs {
		if p != nil {
			all = append(all, p)
		}
		r.pubs[i] = nil
	}
	for i, v := range r.viewers {
		if v != nil && v.c != nil {
			all = append(all, v.c)
		}
		r.viewers[i] = nil
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Go(func() { leaveAndClose(c) })
	}
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.replaced, r.restarts, slices.Clone(r.failures)
}

// leaveAndClose sends leave and waits for the server to close the socket
// before closing everything: client.Close cancels its reader right after
// writing leave, which can reset the connection before the server has read
// it, and the server then keeps the participant for a resume.
func leaveAndClose(c *client.Client) {
	if c.SendRaw([]byte(`{"type":"leave"}`)) == nil {
		select {
		case <-c.Gone():
		case <-time.After(3 * time.Second):
		}
	}
	c.Close()
}
