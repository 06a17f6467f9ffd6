package sfu

import (
	"errors"
	"io"

	"github.com/pion/webrtc/v4"
)

// Events is how the SFU talks back to a participant's client. The signaling
// layer implements it. Methods are called from many goroutines, some while a
// room is locked: they must not block (queue the message and return).
type Events interface {
	// OnJoined comes first, before any other event.
	OnJoined(JoinInfo)
	OnParticipantJoined(ParticipantInfo)
	OnParticipantLeft(ParticipantInfo)
	// OnParticipantUpdated: another participant's state (Reconnecting) changed.
	OnParticipantUpdated(ParticipantInfo)
	OnTrackPublished(TrackInfo)
	OnTrackUnpublished(TrackInfo)
	// OnTrackUpdated: a published track gained a simulcast layer.
	OnTrackUpdated(TrackInfo)
	// OnTrackMuted: a publisher muted or unmuted a track (TrackInfo.Muted).
	OnTrackMuted(TrackInfo)
	// OnMutedBy: a moderator muted what this participant publishes of kind.
	OnMutedBy(kind webrtc.RTPCodecType, by ParticipantInfo)
	// OnSpeakers: the room's active speakers changed (loudest first; empty
	// when nobody speaks). At most every 200 ms.
	OnSpeakers([]SpeakerInfo)
	// OnStreamState: the layer this participant receives of a video changed,
	// or it paused (layer "") or resumed.
	OnStreamState(track string, paused bool, layer string)
	// OnPublishLayers tells a publisher which layers of its track (by mid)
	// someone needs, so it can stop encoding the others.
	OnPublishLayers(track, mid string, active []string)
	// OnOffer carries a subscriber offer; answer with Participant.HandleAnswer.
	OnOffer(sdp string)
	// OnAnswer carries the answer to a publisher offer (HandleOffer).
	OnAnswer(sdp string)
	OnCandidate(peer Peer, c webrtc.ICECandidateInit)
	// OnClosed is called once when the SFU removed the participant on its own
	// (connection failed, negotiation timed out, server shutting down).
	OnClosed(reason error)
}

// Receiver may be implemented by Events: a participant whose Events say
// Receives() == false is never subscribed to anyone's tracks (its join
// token lacks the subscribe right). The others still see it.
type Receiver interface {
	Receives() bool
}

// Errors the signaling layer reports to clients.
var (
	ErrBadSDP          = errors.New("invalid session description")
	ErrBadCandidate    = errors.New("invalid ICE candidate")
	ErrNoOfferPending  = errors.New("no subscriber offer is pending")
	ErrClosed          = errors.New("participant has left")
	ErrServerClosing   = errors.New("server is shutting down")
	ErrConnectionLost  = errors.New("media connection failed")
	ErrNegotiationTime = errors.New("subscriber answer timed out")
	ErrReplaced        = errors.New("the same participant joined again")
)

func isClosed(err error) bool {
	return errors.Is(err, io.ErrClosedPipe) || errors.Is(err, io.EOF)
}
