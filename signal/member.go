package signal

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/sfu"
)

// StatusReplaced closes a WebSocket whose session another connection took
// over: the same identity joined again (a reloaded page), or the client
// resumed on a new socket before the server noticed the old one die. A
// client must not reconnect after it.
const StatusReplaced websocket.StatusCode = 4001

// StatusRemoved and StatusRoomEnded close the socket of a participant a
// moderator removed, and everyone's when a moderator ended the room. A
// client must not reconnect after them.
const (
	StatusRemoved   websocket.StatusCode = 4002
	StatusRoomEnded websocket.StatusCode = 4003
	// StatusRedirected: the join belongs on another node (redirect).
	StatusRedirected websocket.StatusCode = 4004
)

// member is a joined participant's side of the protocol. It outlives the
// WebSocket it joined on: when that drops without a leave, the participant
// stays in its room for the resume grace, and a new socket that presents
// the resume secret takes over where the old one stopped. Every event the
// sfu reports goes through the member's outbox, numbered, so that the new
// socket is first sent exactly what the client missed.
type member struct {
	h           *Handler
	participant *sfu.Participant
	grant       Grant
	room        string
	identity    string // the token's subject; "" without tokens
	secret      string
	log         *zap.Logger

	mu       sync.Mutex
	out      outbox
	sess     *session    // nil while the client is away
	grace    *time.Timer // ends the participant if the client does not come back
	offerSeq uint64      // sequence number of the latest subscriber offer
	gone     bool
}

func newSecret() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// send numbers v, keeps it for a resume, and queues it to the socket if
// the client is connected.
func (m *member) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		m.log.Error("encode message", zap.Error(err))
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sendLocked(b)
}

func (m *member) sendLocked(b []byte) {
	if m.gone {
		return
	}
	stamped := m.out.add(b)
	if m.sess != nil {
		m.sess.queue(stamped)
	}
}

// current says whether s is the member's socket now.
func (m *member) current(s *session) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sess == s
}

// lost is called when s, a socket of this member, ended. A connection
// that broke (no close frame, no pong, a failed write) leaves the
// participant in its room for the resume grace; anything else (a leave, a
// close by the client, the server closing it) ends the participant.
func (m *member) lost(s *session, broken bool) {
	m.mu.Lock()
	if m.sess != s || m.gone {
		m.mu.Unlock()
		return // another socket took over, or the participant already ended
	}
	m.sess = nil
	grace := m.h.ResumeGrace
	if !broken || grace <= 0 || m.h.isClosed() {
		m.mu.Unlock()
		m.end(nil, true)
		return
	}
	m.grace = time.AfterFunc(grace, func() {
		m.log.Info("resume grace passed", zap.Duration("grace", grace))
		m.end(nil, true)
	})
	m.mu.Unlock()
	m.log.Info("client away; keeping its session", zap.Duration("grace", grace))
	m.participant.SetReconnecting(true)
	// A resume that came in between (it cannot take the room's lock under
	// m.mu) must not be left marked away.
	m.mu.Lock()
	back := m.sess != nil
	m.mu.Unlock()
	if back {
		m.participant.SetReconnecting(false)
	}
}

// end forgets the member, closes its socket as closing says if one is
// attached, and with leave removes the participant from its room (without,
// the sfu is removing it already).
func (m *member) end(closing *closeAs, leave bool) {
	m.mu.Lock()
	if m.gone {
		m.mu.Unlock()
		return
	}
	m.gone = true
	if m.grace != nil {
		m.grace.Stop()
	}
	sess, p := m.sess, m.participant
	m.sess = nil
	m.mu.Unlock()
	m.h.forget(m)
	if sess != nil && closing != nil {
		if closing.err != nil {
			sess.send(errorMsg{Type: TypeError, Error: *closing.err})
		}
		sess.shutdown(closing.status, closing.reason)
	}
	if p == nil {
		return // Join failed; the session gives the place back
	}
	if leave {
		p.Leave()
	}
	m.h.occupancy.release(m.room)
}

type closeAs struct {
	status websocket.StatusCode
	reason string
	err    *Error
}

// attach makes s the member's socket after a resume by a client that has
// seen every message up to seq: it is sent what followed, in order, then
// "resumed".
func (m *member) attach(s *session, seq uint64) *Error {
	// Asked before m.mu: Pion's callbacks reach m.send with the
	// PeerConnection's own locks held.
	offer, offerPending := m.participant.PendingOffer()

	m.mu.Lock()
	if m.gone {
		m.mu.Unlock()
		return errorf(CodeResumeFailed, "that session has ended; join again")
	}
	missed, ok := m.out.since(seq)
	if !ok {
		m.mu.Unlock()
		return errorf(CodeResumeFailed, "the server no longer has every message after %d; join again", seq)
	}
	old := m.sess
	if m.grace != nil {
		m.grace.Stop()
		m.grace = nil
	}
	m.sess = s
	for _, b := range missed {
		s.queue(b)
	}
	replayed := len(missed)
	// The client saw the pending offer, so its answer was lost with the
	// old socket: offer again. (An offer after seq was just replayed.)
	if offerPending && m.offerSeq != 0 && m.offerSeq <= seq {
		b, _ := json.Marshal(sdpMsg{Type: TypeOffer, Target: TargetSubscriber, SDP: offer})
		m.sendLocked(b)
		m.offerSeq = m.out.last()
		replayed++
	}
	s.send(resumedMsg{Type: TypeResumed, Replayed: replayed})
	m.mu.Unlock()

	if old != nil {
		old.shutdown(StatusReplaced, "resumed on another connection")
	}
	m.participant.SetReconnecting(false)
	m.participant.Resumed()
	return nil
}

// sfu.Events, called by the sfu package.

func (m *member) OnJoined(info sfu.JoinInfo) {
	you := participant(info.You)
	you.Admin = m.grant.Admin
	msg := joinedMsg{Type: TypeJoined, You: you,
		Participants: make([]participantJSON, 0, len(info.Participants)), Tracks: make([]trackJSON, 0, len(info.Tracks)),
		Resume: &resumeJSON{Secret: m.secret, Grace: int(m.h.ResumeGrace / time.Second)}, Node: m.h.NodeID}
	if m.h.ResumeGrace <= 0 {
		msg.Resume = nil
	}
	if m.h.ICEServers != nil {
		msg.ICEServers = m.h.ICEServers(info.You.ID)
	}
	for _, p := range info.Participants {
		msg.Participants = append(msg.Participants, participant(p))
	}
	for _, t := range info.Tracks {
		msg.Tracks = append(msg.Tracks, track(t))
	}
	// Not numbered: a client that never got joined has nothing to resume.
	m.mu.Lock()
	if m.sess != nil {
		m.sess.send(msg)
	}
	m.mu.Unlock()
}

// Receives tells the sfu whether this participant gets others' media: not
// without the subscribe right.
func (m *member) Receives() bool { return m.grant.Subscribe }

func (m *member) OnParticipantJoined(p sfu.ParticipantInfo) {
	m.send(participantMsg{Type: TypeParticipantJoined, Participant: participant(p)})
}

func (m *member) OnParticipantLeft(p sfu.ParticipantInfo) {
	m.send(participantMsg{Type: TypeParticipantLeft, Participant: participant(p)})
}

func (m *member) OnParticipantUpdated(p sfu.ParticipantInfo) {
	m.send(participantMsg{Type: TypeParticipantUpdated, Participant: participant(p)})
}

func (m *member) OnTrackPublished(t sfu.TrackInfo) {
	m.send(trackMsg{Type: TypeTrackPublished, Track: track(t)})
}

func (m *member) OnTrackUnpublished(t sfu.TrackInfo) {
	m.send(trackMsg{Type: TypeTrackUnpublished, Track: track(t)})
}

func (m *member) OnTrackUpdated(t sfu.TrackInfo) {
	m.send(trackMsg{Type: TypeTrackUpdated, Track: track(t)})
}

func (m *member) OnTrackMuted(t sfu.TrackInfo) {
	m.send(trackMsg{Type: TypeTrackMuted, Track: track(t)})
}

func (m *member) OnMutedBy(kind webrtc.RTPCodecType, by sfu.ParticipantInfo) {
	m.send(mutedMsg{Type: TypeMuted, Kind: kind.String(), By: participant(by)})
}

// OnSpeakers is not numbered or kept: a client that was away is brought
// up to date by the next change, and a replay of old rankings would only
// flash stale highlights.
func (m *member) OnSpeakers(speakers []sfu.SpeakerInfo) {
	msg := speakersMsg{Type: TypeSpeakers, Speakers: make([]speakerJSON, len(speakers))}
	for i, s := range speakers {
		msg.Speakers[i] = speakerJSON{Participant: s.Participant, Level: s.Level}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sess != nil && !m.gone {
		m.sess.send(msg)
	}
}

func (m *member) OnStreamState(trackID string, paused bool, layer string) {
	m.send(streamStateMsg{Type: TypeStreamState, Track: trackID, Paused: paused, Layer: layer})
}

func (m *member) OnPublishLayers(trackID, mid string, active []string) {
	if active == nil {
		active = []string{}
	}
	m.send(publishLayersMsg{Type: TypePublishLayers, Track: trackID, Mid: mid, Active: active})
}

func (m *member) OnOffer(sdp string) {
	b, err := json.Marshal(sdpMsg{Type: TypeOffer, Target: TargetSubscriber, SDP: sdp})
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sendLocked(b)
	m.offerSeq = m.out.last()
}

func (m *member) OnAnswer(sdp string) {
	m.send(sdpMsg{Type: TypeAnswer, Target: TargetPublisher, SDP: sdp})
}

func (m *member) OnCandidate(peer sfu.Peer, c webrtc.ICECandidateInit) {
	m.send(candidateMsg{Type: TypeCandidate, Target: peer.String(), Candidate: c})
}

// OnClosed: the sfu removed the participant on its own.
func (m *member) OnClosed(reason error) {
	code, status := CodeConnectionFailed, websocket.StatusInternalError
	switch {
	case errors.Is(reason, sfu.ErrServerClosing):
		code, status = CodeShuttingDown, websocket.StatusGoingAway
	case errors.Is(reason, sfu.ErrRemoved):
		code, status = CodeRemoved, StatusRemoved
	case errors.Is(reason, sfu.ErrRoomEnded):
		code, status = CodeRoomEnded, StatusRoomEnded
	}
	message := reason.Error()
	if me := (*sfu.ModeratorError)(nil); errors.As(reason, &me) {
		message = me.Reason // the moderator's words, shown as they are
	}
	m.end(&closeAs{status: status, reason: truncate(message, 100), err: &Error{Code: code, Message: message}}, false)
}

func participant(p sfu.ParticipantInfo) participantJSON {
	return participantJSON{ID: p.ID, Name: p.Name, Reconnecting: p.Reconnecting}
}

func track(t sfu.TrackInfo) trackJSON {
	layers := t.Layers
	if layers == nil {
		layers = []string{}
	}
	return trackJSON{ID: t.ID, Participant: t.Participant, Kind: t.Kind.String(), Codec: t.Codec,
		Source: t.Source, Layers: layers, Muted: t.Muted}
}
