// Package signal is the WebSocket signaling protocol (docs/protocol.md): it
// decodes and validates client messages, drives a participant in the sfu
// package, and sends the sfu's events back as JSON.
package signal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pion/webrtc/v4"
)

// Message types, as they appear in the "type" field.
const (
	TypeJoin               = "join"
	TypeJoined             = "joined"
	TypeParticipantJoined  = "participant-joined"
	TypeParticipantLeft    = "participant-left"
	TypeParticipantUpdated = "participant-updated"
	TypeResume             = "resume"
	TypeResumed            = "resumed"
	TypeRestartICE         = "restart-ice"
	TypeTrackPublished     = "track-published"
	TypeTrackUnpublished   = "track-unpublished"
	TypeTrackUpdated       = "track-updated"
	TypeTrackMuted         = "track-muted"
	TypeSpeakers           = "speakers"
	TypeModerate           = "moderate"
	TypeMuted              = "muted"
	TypeMute               = "mute"
	TypeTrackSettings      = "track-settings"
	TypeStreamState        = "stream-state"
	TypePublishLayers      = "publish-layers"
	TypeOffer              = "offer"
	TypeAnswer             = "answer"
	TypeCandidate          = "candidate"
	TypeLeave              = "leave"
	TypePing               = "ping"
	TypePong               = "pong"
	TypeError              = "error"
	TypeDraining           = "draining"
	TypeRedirect           = "redirect"
)

// Targets name a participant's two PeerConnections.
const (
	TargetPublisher  = "publisher"
	TargetSubscriber = "subscriber"
)

// Error codes sent in "error" messages.
const (
	CodeBadMessage       = "bad-message"
	CodeTooLarge         = "too-large"
	CodeUnknownType      = "unknown-type"
	CodeNotJoined        = "not-joined"
	CodeAlreadyJoined    = "already-joined"
	CodeBadSDP           = "bad-sdp"
	CodeBadCandidate     = "bad-candidate"
	CodeConnectionFailed = "connection-failed"
	CodeShuttingDown     = "shutting-down"
	CodeInternal         = "internal"
	CodeResumeFailed     = "resume-failed"
	CodeReplaced         = "replaced"
	CodeRemoved          = "removed"
	CodeRoomEnded        = "room-ended"
	CodeNoParticipant    = "no-such-participant"
	// Access (auth.go) and limits (limits.go).
	CodeUnauthorized       = "unauthorized"
	CodeTokenExpired       = "token-expired"
	CodeForbidden          = "forbidden"
	CodeRoomFull           = "room-full"
	CodeServerFull         = "server-full"
	CodeRateLimited        = "rate-limited"
	CodeTooManyConnections = "too-many-connections"
)

// Limits on what a client may send.
const (
	MaxMessageSize   = 64 << 10
	maxNameLength    = 64
	maxCandidateSize = 1024
	maxSources       = 16
	maxTokenSize     = 4096
	maxSecretSize    = 128
)

// Error is a protocol error: it becomes an "error" message to the client.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Message is a decoded client message. Which fields are set depends on Type.
type Message struct {
	Type  string `json:"type"`
	Room  string `json:"room,omitempty"`
	Name  string `json:"name,omitempty"`
	Token string `json:"token,omitempty"`
	// Replace, in join, is the resume secret of a session this join takes
	// over (a reloaded page, or a failed resume).
	Replace string `json:"replace,omitempty"`
	// Avoid, in join, names a node of the cluster the client was sent to
	// and could not reach: placement leaves it out.
	Avoid string `json:"avoid,omitempty"`
	// Ticket, in join, is the one a redirect gave.
	Ticket string `json:"ticket,omitempty"`
	// Secret and Seq, in resume: the session and the last sequence number
	// the client received.
	Secret    string                   `json:"secret,omitempty"`
	Seq       uint64                   `json:"seq,omitempty"`
	Target    string                   `json:"target,omitempty"`
	SDP       string                   `json:"sdp,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	// Sources maps publisher mids to "camera", "microphone" or "screen".
	Sources map[string]string `json:"sources,omitempty"`
	// Action, Participant, Kind and Reason, in moderate.
	Action      string `json:"action,omitempty"`
	Participant string `json:"participant,omitempty"`
	Kind        string `json:"kind,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Mid and Muted, in mute: the publisher transceiver and its state.
	Mid   string `json:"mid,omitempty"`
	Muted *bool  `json:"muted,omitempty"`
	// Track, Width and Height are a track-settings report.
	Track  string `json:"trackId,omitempty"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
}

var roomPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Decode parses and validates one client message.
func Decode(data []byte) (Message, *Error) {
	if len(data) > MaxMessageSize {
		return Message{}, errorf(CodeTooLarge, "message is %d bytes; the limit is %d", len(data), MaxMessageSize)
	}
	return decode(data)
}

// decode is Decode without the size limit, which a session sets itself
// (Limits.MessageSize).
func decode(data []byte) (Message, *Error) {
	var m Message
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return m, errorf(CodeBadMessage, "a message must be a JSON object")
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return Message{}, errorf(CodeBadMessage, "invalid JSON: %v", err)
	}
	switch m.Type {
	case TypeJoin:
		if !roomPattern.MatchString(m.Room) {
			return m, errorf(CodeBadMessage, `field "room": must be 1-64 characters of A-Z a-z 0-9 _ - .`)
		}
		if !validName(m.Name) {
			return m, errorf(CodeBadMessage, `field "name": must be 1-64 printable characters`)
		}
		if len(m.Token) > maxTokenSize {
			return m, errorf(CodeBadMessage, `field "token": longer than %d bytes`, maxTokenSize)
		}
		if len(m.Replace) > maxSecretSize {
			return m, errorf(CodeBadMessage, `field "replace": longer than %d bytes`, maxSecretSize)
		}
		if len(m.Avoid) > maxNameLength*4 {
			return m, errorf(CodeBadMessage, `field "avoid": longer than %d bytes`, maxNameLength*4)
		}
		if len(m.Ticket) > maxNameLength {
			return m, errorf(CodeBadMessage, `field "ticket": longer than %d bytes`, maxNameLength)
		}
	case TypeResume:
		if m.Secret == "" || len(m.Secret) > maxSecretSize {
			return m, errorf(CodeBadMessage, `field "secret": missing or longer than %d bytes`, maxSecretSize)
		}
	case TypeModerate:
		switch m.Action {
		case "mute":
			if m.Kind != "audio" && m.Kind != "video" {
				return m, errorf(CodeBadMessage, `field "kind": must be "audio" or "video"`)
			}
			fallthrough
		case "remove":
			if m.Participant == "" || len(m.Participant) > 64 {
				return m, errorf(CodeBadMessage, `field "participant": missing or longer than 64 bytes`)
			}
		case "end-room":
		default:
			return m, errorf(CodeBadMessage, `field "action": must be "mute", "remove" or "end-room"`)
		}
		if len(m.Reason) > 200 || (m.Reason != "" && !validName(truncate(m.Reason, 64))) {
			return m, errorf(CodeBadMessage, `field "reason": at most 200 bytes of printable text`)
		}
	case TypeMute:
		if m.Mid == "" || len(m.Mid) > 32 {
			return m, errorf(CodeBadMessage, `field "mid": missing or longer than 32 bytes`)
		}
		if m.Muted == nil {
			return m, errorf(CodeBadMessage, `field "muted": missing`)
		}
	case TypeRestartICE:
		if m.Target != TargetSubscriber {
			return m, errorf(CodeBadMessage, `field "target": only the "subscriber" connection is restarted by the server`)
		}
	case TypeOffer, TypeAnswer:
		want := TargetPublisher
		if m.Type == TypeAnswer {
			want = TargetSubscriber
		}
		if m.Target != want {
			return m, errorf(CodeBadMessage, `field "target": %s must target %q`, m.Type, want)
		}
		if m.SDP == "" {
			return m, errorf(CodeBadMessage, `field "sdp": missing`)
		}
		if len(m.Sources) > maxSources {
			return m, errorf(CodeBadMessage, `field "sources": more than %d entries`, maxSources)
		}
	case TypeCandidate:
		if m.Target != TargetPublisher && m.Target != TargetSubscriber {
			return m, errorf(CodeBadMessage, `field "target": must be "publisher" or "subscriber"`)
		}
		if m.Candidate == nil {
			return m, errorf(CodeBadMessage, `field "candidate": missing`)
		}
		if len(m.Candidate.Candidate) > maxCandidateSize {
			return m, errorf(CodeBadMessage, `field "candidate": longer than %d bytes`, maxCandidateSize)
		}
	case TypeTrackSettings:
		if m.Track == "" || len(m.Track) > 64 {
			return m, errorf(CodeBadMessage, `field "trackId": missing or too long`)
		}
		if m.Width < 0 || m.Height < 0 || m.Width > 16384 || m.Height > 16384 {
			return m, errorf(CodeBadMessage, `fields "width" and "height": must be 0-16384`)
		}
	case TypeLeave, TypePing:
	case "":
		return m, errorf(CodeUnknownType, `field "type": missing`)
	default:
		return m, errorf(CodeUnknownType, "unknown message type %q", truncate(m.Type, 32))
	}
	return m, nil
}

// validName accepts printable text plus the invisible characters real names
// use (the emoji joiner U+200D, no-break spaces), but no control or format
// characters such as bidi overrides, which could disguise a name.
func validName(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	n := 0
	for _, r := range s {
		if !unicode.IsPrint(r) && r != '\u200d' && r != '\u00a0' && r != '\u202f' {
			return false
		}
		n++
	}
	return n >= 1 && n <= maxNameLength && strings.TrimSpace(s) != ""
}

// truncate shortens s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Server → client messages.

type participantJSON struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Reconnecting bool   `json:"reconnecting,omitempty"`
	Admin        bool   `json:"admin,omitempty"` // only in joined.you: may moderate
}

type mutedMsg struct {
	Type string          `json:"type"`
	Kind string          `json:"kind"`
	By   participantJSON `json:"by"`
}

type trackJSON struct {
	ID          string   `json:"id"`
	Participant string   `json:"participant"`
	Kind        string   `json:"kind"`
	Codec       string   `json:"codec"`
	Source      string   `json:"source"`
	Layers      []string `json:"layers"`
	Muted       bool     `json:"muted,omitempty"`
}

type joinedMsg struct {
	Type         string            `json:"type"`
	You          participantJSON   `json:"you"`
	Participants []participantJSON `json:"participants"`
	Tracks       []trackJSON       `json:"tracks"`
	ICEServers   []ICEServer       `json:"iceServers,omitempty"`
	Resume       *resumeJSON       `json:"resume,omitempty"`
	// Node is the cluster node the client is on, for a join's avoid when
	// it cannot reach it again.
	Node string `json:"node,omitempty"`
}

// resumeJSON tells a client how to get its session back after its
// WebSocket breaks: send resume with the secret within grace seconds.
type resumeJSON struct {
	Secret string `json:"secret"`
	Grace  int    `json:"grace"`
}

type resumedMsg struct {
	Type     string `json:"type"`
	Replayed int    `json:"replayed"` // messages sent again before this one
}

// ICEServer is a STUN or TURN server for the client's PeerConnections, in
// the shape of the browser's RTCIceServer.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

type drainingMsg struct {
	Type  string `json:"type"`
	Grace int    `json:"grace"` // seconds until the server closes the connection
	// URL and Node: in a cluster, a serving node to move to.
	URL  string `json:"url,omitempty"`
	Node string `json:"node,omitempty"`
}

// redirectMsg answers a join that belongs on another node of the cluster.
type redirectMsg struct {
	Type   string `json:"type"`
	URL    string `json:"url"`
	Node   string `json:"node"`
	Ticket string `json:"ticket,omitempty"`
}

type participantMsg struct {
	Type        string          `json:"type"`
	Participant participantJSON `json:"participant"`
}

type trackMsg struct {
	Type  string    `json:"type"`
	Track trackJSON `json:"track"`
}

type sdpMsg struct {
	Type   string `json:"type"`
	Target string `json:"target"`
	SDP    string `json:"sdp"`
}

type candidateMsg struct {
	Type      string                  `json:"type"`
	Target    string                  `json:"target"`
	Candidate webrtc.ICECandidateInit `json:"candidate"`
}

type streamStateMsg struct {
	Type   string `json:"type"`
	Track  string `json:"trackId"`
	Paused bool   `json:"paused"`
	Layer  string `json:"layer"`
}

type publishLayersMsg struct {
	Type   string   `json:"type"`
	Track  string   `json:"trackId"`
	Mid    string   `json:"mid"`
	Active []string `json:"active"`
}

type speakerJSON struct {
	Participant string  `json:"participant"`
	Level       float64 `json:"level"`
}

type speakersMsg struct {
	Type     string        `json:"type"`
	Speakers []speakerJSON `json:"speakers"`
}

type errorMsg struct {
	Type string `json:"type"`
	Error
}

type typeMsg struct {
	Type string `json:"type"`
}
