// Package sfu holds the rooms, their participants, and the forwarding path:
// a Track per published media track reads RTP once (track.go) and writes it
// to a DownTrack per subscriber (downtrack.go), which rewrites it into the
// subscriber's own RTP stream and answers its RTCP.
package sfu

import (
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pion/webrtc/v4"
	"github.com/switchboard-sfu/switchboard/rtc"
)

// Rooms is the server's set of rooms. A room exists while someone is in it.
type Rooms struct {
	api *rtc.API
	log *zap.Logger

	mu     sync.Mutex
	rooms  map[string]*Room
	closed bool
	// ended accumulates the counters of tracks and down-tracks that are gone.
	ended counters
	// iceRestarts counts subscriber ICE restarts (switchboard_ice_restarts_total).
	iceRestarts atomic.Uint64
	// stop ends rankSpeakersLoop, which closes ranked when it returns.
	stop, ranked chan struct{}
	stopOnce     sync.Once
	// dataLimits bound room data (data.go).
	dataLimits DataLimits
	// observer is told the rooms' events (admin.go); nil: none.
	observer Observer
	// dataOut carries data messages to other nodes (data.go); nil: none.
	dataOut func(room string, m RoomData)
	// moderationOut carries moderation to other nodes (moderate.go).
	moderationOut func(room string, m RemoteModeration)
}

// NewRooms returns an empty set of rooms whose PeerConnections come from api.
func NewRooms(api *rtc.API, log *zap.Logger) *Rooms {
	rs := &Rooms{api: api, log: log, rooms: map[string]*Room{}, dataLimits: DefaultDataLimits(),
		stop: make(chan struct{}), ranked: make(chan struct{})}
	go rs.rankSpeakersLoop()
	return rs
}

// Join adds a participant named name to room, creating the room if needed.
// events.OnJoined is called before Join returns and before any other event.
// The rooms' lock is held only to find the room: creating the
// PeerConnections of one participant never holds up joins to other rooms.
func (rs *Rooms) Join(room, name string, events Events) (*Participant, error) {
	rs.mu.Lock()
	if rs.closed {
		rs.mu.Unlock()
		return nil, ErrServerClosing
	}
	r := rs.rooms[room]
	if r == nil {
		r = &Room{name: room, rooms: rs, participants: map[string]*Participant{}, tracks: map[string]*Track{},
			remotes:  map[string]ParticipantInfo{},
			speakers: newSpeakerDetector()}
		r.data = newRoomData(r)
		rs.rooms[room] = r
		rs.log.Info("room opened", zap.String("room", room))
		rs.observe(RoomStarted, room, nil, nil)
	}
	// A room with someone joining is not empty: it stays in the map.
	r.mu.Lock()
	r.joining++
	r.mu.Unlock()
	rs.mu.Unlock()

	p, err := newParticipant(rs.api, r, name, events, rs.log)
	if err != nil {
		r.mu.Lock()
		r.joining--
		r.mu.Unlock()
		rs.removeIfEmpty(r)
		return nil, err
	}
	r.join(p)
	if rs.isClosed() {
		// Close ran while p's connections were being made and did not see it.
		r.leave(p, ErrServerClosing)
		return nil, ErrServerClosing
	}
	return p, nil
}

func (rs *Rooms) isClosed() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.closed
}

// Close removes every participant, telling each that the server is closing,
// and refuses new joins.
func (rs *Rooms) Close() {
	rs.mu.Lock()
	rs.closed = true
	var all []*Participant
	for _, r := range rs.rooms {
		r.mu.Lock()
		for _, p := range r.participants {
			all = append(all, p)
		}
		r.mu.Unlock()
	}
	rs.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.room.leave(p, ErrServerClosing)
		}()
	}
	wg.Wait()
	rs.stopOnce.Do(func() { close(rs.stop) })
	<-rs.ranked
}

// Room is a set of participants who receive each other's tracks.
type Room struct {
	name  string
	rooms *Rooms

	mu           sync.Mutex
	participants map[string]*Participant
	// remotes are the room's participants on other nodes (remote.go).
	remotes  map[string]ParticipantInfo
	tracks   map[string]*Track
	joining  int        // participants being created, who keep the room open
	data     *dataRelay // chat and app messages (data.go)
	speakers *speakerDetector
	// speakerOrder is the last ranking, for the allocator: the active
	// speaker's video is served first when bandwidth is short.
	speakerOrder atomic.Pointer[[]string]
}

// join adds p, whose Join counted it in r.joining.
func (r *Room) join(p *Participant) {
	r.mu.Lock()
	r.joining--
	info := JoinInfo{You: p.info}
	others := make([]*Participant, 0, len(r.participants))
	for _, o := range r.participants {
		others = append(others, o)
		info.Participants = append(info.Participants, o.infoLocked())
	}
	for _, o := range r.remotes {
		info.Participants = append(info.Participants, o)
	}
	tracks := make([]*Track, 0, len(r.tracks))
	for _, t := range r.tracks {
		tracks = append(tracks, t)
		info.Tracks = append(info.Tracks, t.Info())
	}
	r.participants[p.info.ID] = p
	joined := p.info
	r.rooms.observe(ParticipantJoined, r.name, &joined, nil)
	// Under the lock, so that no event about this room reaches p before it.
	p.events.OnJoined(info)
	// Who speaks now, so that a newcomer's highlight is the server's from
	// the start.
	p.events.OnSpeakers(r.speakerInfo())
	r.mu.Unlock()

	p.log.Info("participant joined", zap.String("name", p.info.Name))
	for _, o := range others {
		o.events.OnParticipantJoined(p.info)
	}
	for _, t := range tracks {
		p.subscribe(t)
	}
	p.requestNegotiation()
}

// publish makes t available to everyone else in the room; false if its
// publisher is no longer in the room.
func (r *Room) publish(owner *Participant, t *Track) bool {
	r.mu.Lock()
	if r.participants[owner.info.ID] != owner {
		r.mu.Unlock()
		return false
	}
	r.tracks[t.info.ID] = t
	ownerInfo, published := owner.infoLocked(), t.Info()
	r.rooms.observe(TrackPublished, r.name, &ownerInfo, &published)
	subs := make([]*Participant, 0, len(r.participants))
	for _, o := range r.participants {
		if o != owner {
			subs = append(subs, o)
		}
	}
	r.mu.Unlock()
	for _, s := range subs {
		s.events.OnTrackPublished(t.Info())
		s.subscribe(t)
	}
	return true
}

// updated tells the others that t gained a layer.
func (r *Room) updated(t *Track) {
	r.mu.Lock()
	if r.tracks[t.info.ID] != t {
		r.mu.Unlock()
		return
	}
	subs := make([]*Participant, 0, len(r.participants))
	for _, o := range r.participants {
		if o.info.ID != t.info.Participant {
			subs = append(subs, o)
		}
	}
	r.mu.Unlock()
	info := t.Info()
	for _, s := range subs {
		s.events.OnTrackUpdated(info)
	}
}

// mutedChanged tells the others that t was muted or unmuted.
func (r *Room) mutedChanged(t *Track) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tracks[t.info.ID] != t {
		return
	}
	info := t.Info()
	for _, o := range r.participants {
		if o.info.ID != t.info.Participant {
			o.events.OnTrackMuted(info)
		}
	}
}

// unpublish stops forwarding t and takes it away from its subscribers.
func (r *Room) unpublish(t *Track) {
	r.mu.Lock()
	if r.tracks[t.info.ID] != t {
		r.mu.Unlock()
		return
	}
	delete(r.tracks, t.info.ID)
	for _, o := range r.participants {
		if o.info.ID != t.info.Participant {
			o.events.OnTrackUnpublished(t.Info())
		}
	}
	var owner *ParticipantInfo
	if p := r.participants[t.info.Participant]; p != nil {
		info := p.infoLocked()
		owner = &info
	}
	unpublished := t.Info()
	r.rooms.observe(TrackUnpublished, r.name, owner, &unpublished)
	r.mu.Unlock()
	r.drop(t)
}

// drop ends a track's subscriptions. Its subscribers were told under the
// room's lock, where the order of what they are told is decided: a track
// that ends while its publisher leaves is always reported unpublished
// before the publisher is reported gone. (Events calls do not block.)
func (r *Room) drop(t *Track) {
	for _, d := range t.close() {
		d.subscriber.unsubscribe(d)
	}
	t.stats.addTo(&r.rooms.ended)
}

// removeTracksLocked takes the tracks of a participant who left (here or
// on another node) out of the room and tells the others it and its tracks
// are gone; it returns those tracks, for the caller to drop once r.mu is
// released. r.mu held.
func (r *Room) removeTracksLocked(who ParticipantInfo) []*Track {
	var theirs []*Track
	for id, t := range r.tracks {
		if t.info.Participant == who.ID {
			theirs = append(theirs, t)
			delete(r.tracks, id)
		}
	}
	for _, o := range r.participants {
		for _, t := range theirs {
			o.events.OnTrackUnpublished(t.Info())
		}
		o.events.OnParticipantLeft(who)
	}
	return theirs
}

// leave removes p and its tracks from the room and closes its connections.
// reason is nil when p asked to leave; otherwise p's client is told why.
func (r *Room) leave(p *Participant, reason error) {
	p.leaveOnce.Do(func() {
		r.mu.Lock()
		delete(r.participants, p.info.ID)
		mine := r.removeTracksLocked(p.info)
		left := p.info
		for _, t := range mine {
			info := t.Info()
			r.rooms.observe(TrackUnpublished, r.name, &left, &info)
		}
		r.rooms.observe(ParticipantLeft, r.name, &left, nil)
		empty := len(r.participants) == 0 && r.joining == 0
		r.mu.Unlock()

		if empty {
			r.rooms.removeIfEmpty(r)
		}
		for _, t := range mine {
			r.drop(t)
		}
		if p.data != nil {
			r.data.leave(p.data)
		}
		p.close()
		p.log.Info("participant left", zap.NamedError("reason", reason))
		if reason != nil {
			p.events.OnClosed(reason)
		}
	})
}

func (rs *Rooms) removeIfEmpty(r *Room) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.participants) == 0 && r.joining == 0 && rs.rooms[r.name] == r {
		delete(rs.rooms, r.name)
		rs.log.Info("room closed", zap.String("room", r.name))
		rs.observe(RoomEnded, r.name, nil, nil)
		// Nobody here receives the remote participants' tracks any more.
		remote := slices.Collect(maps.Values(r.tracks))
		r.tracks = map[string]*Track{}
		r.remotes = map[string]ParticipantInfo{}
		go func() {
			for _, t := range remote {
				r.drop(t)
			}
		}()
	}
}

// setReconnecting records whether p's client is away and tells the others.
func (r *Room) setReconnecting(p *Participant, away bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.participants[p.info.ID] != p || p.reconnecting == away {
		return
	}
	p.reconnecting = away
	info := p.infoLocked()
	for _, o := range r.participants {
		if o != p {
			o.events.OnParticipantUpdated(info)
		}
	}
}

// rankSpeakers turns the room's audio levels since the last call into a
// ranking of speakers, and tells everyone when it changed.
func (r *Room) rankSpeakers(interval time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	activities := map[string]float64{}
	for _, t := range r.tracks {
		if t.info.Kind != webrtc.RTPCodecTypeAudio || t.muted.Load() {
			continue
		}
		if a, ok := t.levels.take(); ok {
			activities[t.info.Participant] = max(activities[t.info.Participant], a)
		}
	}
	r.speakers.observe(interval, activities)
	order, changed := r.speakers.rank()
	if !changed {
		return
	}
	ranked := slices.Clone(order)
	r.speakerOrder.Store(&ranked)
	info := r.speakerInfo()
	for _, p := range r.participants {
		p.events.OnSpeakers(info)
	}
}

// speakerInfo is the last ranking with each speaker's activity; r.mu held.
func (r *Room) speakerInfo() []SpeakerInfo {
	var order []string
	if o := r.speakerOrder.Load(); o != nil {
		order = *o
	}
	info := make([]SpeakerInfo, len(order))
	for i, id := range order {
		info[i] = SpeakerInfo{Participant: id, Level: math.Round(r.speakers.level(id)*100) / 100}
	}
	return info
}

// speakerRank is where participant is in the room's speaker ranking, -1
// if it is not speaking.
func (r *Room) speakerRank(participant string) int {
	if order := r.speakerOrder.Load(); order != nil {
		return slices.Index(*order, participant)
	}
	return -1
}

// rankSpeakersLoop ranks every room's speakers every speakerInterval until
// the rooms close.
func (rs *Rooms) rankSpeakersLoop() {
	defer close(rs.ranked)
	t := time.NewTicker(speakerInterval)
	defer t.Stop()
	for {
		select {
		case <-rs.stop:
			return
		case <-t.C:
		}
		rs.mu.Lock()
		rooms := slices.Collect(maps.Values(rs.rooms))
		rs.mu.Unlock()
		for _, r := range rooms {
			r.rankSpeakers(speakerInterval)
		}
	}
}
