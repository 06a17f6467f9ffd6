package sfu

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// Moderation: a participant with the admin right (the signaling layer
// checks it) mutes another's microphone or camera, removes someone, or
// ends the room for everyone.

var (
	// ErrRemoved ends a participant that a moderator removed; the reason
	// is wrapped in with it.
	ErrRemoved = errors.New("removed from the room")
	// ErrRoomEnded ends everyone in a room a moderator ended.
	ErrRoomEnded = errors.New("the room was ended")
	// ErrNoParticipant: the participant named is not in the room.
	ErrNoParticipant = errors.New("no such participant in the room")
)

// ServerModerator is who the server's API acts as when it mutes someone:
// what the target's client is told.
var ServerModerator = ParticipantInfo{ID: "server", Name: "Server"}

// other returns the participant id in p's room.
func (p *Participant) other(id string) (*Participant, error) { return p.room.participant(id) }

// participant returns the participant id in r.
func (r *Room) participant(id string) (*Participant, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o := r.participants[id]; o != nil {
		return o, nil
	}
	return nil, ErrNoParticipant
}

// MuteOther mutes what participant target publishes of kind: nothing of it
// is forwarded any more, the others see it muted, and the target's client
// is told who did it so that it mutes its own track too. The target may
// unmute itself.
func (p *Participant) MuteOther(target string, kind webrtc.RTPCodecType) error {
	o, err := p.other(target)
	if err != nil {
		return p.room.moderateElsewhere(RemoteModeration{Action: "mute", Target: target, Kind: kind.String(), By: p.info}, err)
	}
	p.log.Info("muted by a moderator", zap.String("target", target), zap.Stringer("kind", kind))
	o.mutedBy(kind, p.info)
	return nil
}

// mutedBy mutes what o publishes of kind and tells o that by did it.
func (o *Participant) mutedBy(kind webrtc.RTPCodecType, by ParticipantInfo) {
	o.mu.Lock()
	var mids []string
	for _, t := range o.tracks {
		if t.info.Kind == kind {
			mids = append(mids, t.mid)
		}
	}
	o.mu.Unlock()
	for _, mid := range mids {
		o.SetMuted(mid, true)
	}
	o.events.OnMutedBy(kind, by)
}

// Remove takes participant target out of the room; its client is told
// why (reason may be empty).
func (p *Participant) Remove(target, reason string) error {
	o, err := p.other(target)
	if err != nil {
		return p.room.moderateElsewhere(RemoteModeration{Action: "remove", Target: target, Reason: reason, By: p.info}, err)
	}
	p.log.Info("removed by a moderator", zap.String("target", target), zap.String("reason", reason))
	o.room.leave(o, withReason(ErrRemoved, reason))
	return nil
}

// EndRoom removes everyone from p's room, p included, telling each why.
func (p *Participant) EndRoom(reason string) {
	p.log.Info("room ended by a moderator", zap.String("reason", reason))
	_ = p.room.moderateElsewhere(RemoteModeration{Action: "end-room", Reason: reason, By: p.info}, nil)
	p.room.end(reason)
}

// RemoteModeration is a moderator's action on a room's participant on
// another node (a cluster), or on the whole room.
type RemoteModeration struct {
	Action string          `json:"action"` // "mute", "remove" or "end-room"
	Target string          `json:"target,omitempty"`
	Kind   string          `json:"kind,omitempty"` // "audio" or "video", for mute
	Reason string          `json:"reason,omitempty"`
	By     ParticipantInfo `json:"by"`
}

// SetModerationBridge sets where moderation of participants on other
// nodes goes; call it before the first Join.
func (rs *Rooms) SetModerationBridge(out func(room string, m RemoteModeration)) {
	rs.moderationOut = out
}

// moderateElsewhere passes m to the target's node when the target is a
// remote participant (or m is for the whole room); otherwise it returns
// notHere, the error of looking for the target here.
func (r *Room) moderateElsewhere(m RemoteModeration, notHere error) error {
	out := r.rooms.moderationOut
	if out == nil {
		return notHere
	}
	if m.Action != "end-room" {
		r.mu.Lock()
		_, remote := r.remotes[m.Target]
		r.mu.Unlock()
		if !remote {
			return notHere
		}
	}
	out(r.name, m)
	return nil
}

// Moderate applies another node's moderation to room's participants here.
func (rs *Rooms) Moderate(room string, m RemoteModeration) {
	r, err := rs.room(room)
	if err != nil {
		return
	}
	if m.Action == "end-room" {
		rs.log.Info("room ended by a moderator on another node", zap.String("room", room), zap.String("reason", m.Reason))
		r.end(m.Reason)
		return
	}
	o, err := r.participant(m.Target)
	if err != nil {
		return
	}
	switch m.Action {
	case "mute":
		o.log.Info("muted by a moderator on another node", zap.String("kind", m.Kind), zap.String("by", m.By.ID))
		o.mutedBy(webrtc.NewRTPCodecType(m.Kind), m.By)
	case "remove":
		o.log.Info("removed by a moderator on another node", zap.String("reason", m.Reason), zap.String("by", m.By.ID))
		r.leave(o, withReason(ErrRemoved, m.Reason))
	}
}

// end removes everyone from r, telling each why.
func (r *Room) end(reason string) {
	r.mu.Lock()
	all := slices.Collect(maps.Values(r.participants))
	r.mu.Unlock()
	for _, o := range all {
		r.leave(o, withReason(ErrRoomEnded, reason))
	}
}

// ModeratorError is why a moderator ended a participant: ErrRemoved or
// ErrRoomEnded, and the reason the moderator gave (may be empty), which is
// what its client is shown.
type ModeratorError struct {
	Err    error
	Reason string
}

func (e *ModeratorError) Error() string {
	if e.Reason == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("%v: %s", e.Err, e.Reason)
}

func (e *ModeratorError) Unwrap() error { return e.Err }

func withReason(err error, reason string) error { return &ModeratorError{Err: err, Reason: reason} }
