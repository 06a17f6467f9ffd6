package sfu

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// What the server's API (package api) does to rooms without being in one:
// list them, remove or mute a participant, end a room, send it a message.
// Moderation by a participant is moderate.go; both share its logic.

var (
	// ErrNoRoom: no room of that name is open.
	ErrNoRoom = errors.New("no such room")
	// ErrEmptyData: a message from the server without text.
	ErrEmptyData = errors.New("the message has no text")
	// ErrDataTooLarge: a message from the server over the data message size.
	ErrDataTooLarge = errors.New("the message is too large")
)

// RoomInfo is an open room as the API lists it.
type RoomInfo struct {
	Name         string
	Participants []RoomParticipant // by id
}

// RoomParticipant is one participant of a listed room, with what it publishes.
type RoomParticipant struct {
	ParticipantInfo
	Tracks []TrackInfo // by id
}

// List describes every open room, by name.
func (rs *Rooms) List() []RoomInfo {
	rs.mu.Lock()
	rooms := make([]*Room, 0, len(rs.rooms))
	for _, r := range rs.rooms {
		rooms = append(rooms, r)
	}
	rs.mu.Unlock()
	out := make([]RoomInfo, 0, len(rooms))
	for _, r := range rooms {
		out = append(out, r.describe())
	}
	slices.SortFunc(out, func(a, b RoomInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Room describes the room name; ErrNoRoom if it is not open.
func (rs *Rooms) Room(name string) (RoomInfo, error) {
	r, err := rs.room(name)
	if err != nil {
		return RoomInfo{}, err
	}
	return r.describe(), nil
}

func (rs *Rooms) room(name string) (*Room, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r := rs.rooms[name]; r != nil {
		return r, nil
	}
	return nil, ErrNoRoom
}

// describe is r as the API lists it.
func (r *Room) describe() RoomInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	info := RoomInfo{Name: r.name, Participants: make([]RoomParticipant, 0, len(r.participants))}
	byID := map[string]int{}
	for _, p := range r.participants {
		byID[p.info.ID] = len(info.Participants)
		info.Participants = append(info.Participants, RoomParticipant{ParticipantInfo: p.infoLocked(), Tracks: []TrackInfo{}})
	}
	for _, t := range r.tracks {
		if i, ok := byID[t.info.Participant]; ok {
			info.Participants[i].Tracks = append(info.Participants[i].Tracks, t.Info())
		}
	}
	for i := range info.Participants {
		slices.SortFunc(info.Participants[i].Tracks, func(a, b TrackInfo) int { return strings.Compare(a.ID, b.ID) })
	}
	slices.SortFunc(info.Participants, func(a, b RoomParticipant) int { return strings.Compare(a.ID, b.ID) })
	return info
}

// participant finds participant id in room.
func (rs *Rooms) participant(room, id string) (*Participant, error) {
	r, err := rs.room(room)
	if err != nil {
		return nil, err
	}
	return r.participant(id)
}

// Remove takes participant id out of room as a moderator would; its client
// is told why (reason may be empty).
func (rs *Rooms) Remove(room, id, reason string) error {
	p, err := rs.participant(room, id)
	if err != nil {
		return rs.moderateElsewhere(room, RemoteModeration{Action: "remove", Target: id, Reason: reason, By: ServerModerator}, err)
	}
	p.log.Info("removed by the server's API", zap.String("reason", reason))
	p.room.leave(p, withReason(ErrRemoved, reason))
	return nil
}

// Mute mutes what participant id of room publishes of kind, as a
// moderator would; its client is told that ServerModerator did it.
func (rs *Rooms) Mute(room, id string, kind webrtc.RTPCodecType) error {
	p, err := rs.participant(room, id)
	if err != nil {
		return rs.moderateElsewhere(room, RemoteModeration{Action: "mute", Target: id, Kind: kind.String(), By: ServerModerator}, err)
	}
	p.log.Info("muted by the server's API", zap.Stringer("kind", kind))
	p.mutedBy(kind, ServerModerator)
	return nil
}

// End removes everyone from room, telling each why (reason may be empty).
func (rs *Rooms) End(room, reason string) error {
	r, err := rs.room(room)
	if err != nil {
		return err
	}
	rs.log.Info("room ended by the server's API", zap.String("room", room), zap.String("reason", reason))
	_ = r.moderateElsewhere(RemoteModeration{Action: "end-room", Reason: reason, By: ServerModerator}, nil)
	r.end(reason)
	return nil
}

// moderateElsewhere is Room.moderateElsewhere for the API: notHere when
// the room is not open here either.
func (rs *Rooms) moderateElsewhere(room string, m RemoteModeration, notHere error) error {
	r, err := rs.room(room)
	if err != nil {
		return notHere
	}
	return r.moderateElsewhere(m, notHere)
}

// SendData sends text to everyone in room as a chat message from the
// server (from {"id": "server", "name": "Server"}), kept in the room's
// chat history for those who join later.
func (rs *Rooms) SendData(room, text string) error {
	r, err := rs.room(room)
	if err != nil {
		return err
	}
	return r.data.announce(text)
}

// Event is something that happened in a room, for an Observer.
type Event struct {
	Type        EventType
	Room        string
	Participant *ParticipantInfo // participant events; the publisher for track events
	Track       *TrackInfo       // track events
	Time        time.Time
}

// EventType names an Event.
type EventType string

// The events an Observer is told.
const (
	RoomStarted       EventType = "room-started"
	RoomEnded         EventType = "room-ended"
	ParticipantJoined EventType = "participant-joined"
	ParticipantLeft   EventType = "participant-left"
	TrackPublished    EventType = "track-published"
	TrackUnpublished  EventType = "track-unpublished"
)

// An Observer is told every Event in the order it happened in its room. It
// is called from many goroutines, often with a room locked: it must not
// block or call back into Rooms (queue the event and return).
type Observer func(Event)

// SetObserver sets the observer of every room's events; call it before the
// first Join.
func (rs *Rooms) SetObserver(o Observer) { rs.observer = o }

// observe tells the observer, if any, about an event of room.
func (rs *Rooms) observe(typ EventType, room string, p *ParticipantInfo, t *TrackInfo) {
	if rs.observer == nil {
		return
	}
	rs.observer(Event{Type: typ, Room: room, Participant: p, Track: t, Time: time.Now()})
}
