package sfu

import "github.com/pion/webrtc/v4"

// What the sfu tells its users about participants and tracks.

// Peer names one of a participant's two PeerConnections.
type Peer int

// The two PeerConnections of a participant.
const (
	Publisher  Peer = iota // the client offers; media flows to the server
	Subscriber             // the server offers; media flows to the client
)

func (p Peer) String() string {
	if p == Publisher {
		return "publisher"
	}
	return "subscriber"
}

// ParticipantInfo describes a participant to the others.
type ParticipantInfo struct {
	ID   string
	Name string
	// Reconnecting: its client lost the connection to the server and may
	// come back (session resume); its tracks stay published meanwhile.
	Reconnecting bool
}

// TrackInfo describes a published track.
type TrackInfo struct {
	ID          string
	Participant string
	Kind        webrtc.RTPCodecType
	Codec       string   // MIME type, e.g. video/VP8
	Source      string   // "camera", "microphone" or "screen"
	Layers      []string // simulcast rids received so far, lowest first
	// Muted: the publisher muted it (a microphone muted, a camera turned
	// off); nothing of it is forwarded until it is unmuted.
	Muted bool
}

// Sources of a track, as the publisher declares them.
const (
	SourceCamera     = "camera"
	SourceMicrophone = "microphone"
	SourceScreen     = "screen"
)

// SpeakerInfo is one active speaker: who, and how much they speak (0-1).
type SpeakerInfo struct {
	Participant string
	Level       float64
}

// JoinInfo is what a participant learns when it enters a room.
type JoinInfo struct {
	You          ParticipantInfo
	Participants []ParticipantInfo // the others
	Tracks       []TrackInfo       // what the others publish
}
