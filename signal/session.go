package signal

import (
	"context"
	"encoding/json"
	"errors"

	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/switchboard-sfu/switchboard/sfu"
)

// Timing and limits of a session.
const (
	// A ping every pingInterval, answered within pingTimeout, bounds how long
	// a vanished client stays in its room: under 10 s.
	pingInterval = 4 * time.Second
	pingTimeout  = 4 * time.Second
	writeTimeout = 10 * time.Second
	// hardReadLimit is where the WebSocket library gives up on a frame and
	// closes with 1009; between MaxMessageSize and it, the client gets a
	// "too-large" error and the session lives on.
	hardReadLimit  = 1 << 20
	maxBadMessages = 10
	sendQueueSize  = 256
)

// Handler serves the signaling WebSocket at /ws.
type Handler struct {
	rooms *sfu.Rooms
	log   *zap.Logger
	// OriginPatterns lists the hosts (path.Match patterns) whose pages may
	// open the WebSocket besides the server's own; see websocket.AcceptOptions.
	OriginPatterns []string
	// Auth checks join tokens; nil admits everyone with every right but
	// admin (development).
	Auth *Auth
	// Limits bound what clients may take (limits.go).
	Limits Limits
	// ICEServers, when set, returns the ICE servers (TURN, with
	// credentials) for the participant with the given id, sent in joined.
	ICEServers func(participant string) []ICEServer
	// ClientIP, when set, returns the address of the client behind r, for
	// per-address limits and logs (e.g. from X-Forwarded-For behind a
	// trusted proxy); by default it is r.RemoteAddr's.
	ClientIP func(r *http.Request) string

	occupancy occupancy
	perAddr   perAddress

	mu       sync.Mutex
	sessions map[*session]struct{}
	closed   bool
	draining bool
	wg       sync.WaitGroup
}

// NewHandler returns a handler that joins clients to rooms.
func NewHandler(rooms *sfu.Rooms, log *zap.Logger) *Handler {
	return &Handler{rooms: rooms, log: log, sessions: map[*session]struct{}{}}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip := h.clientIP(r)
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.OriginPatterns})
	if err != nil {
		h.log.Info("websocket refused", zap.String("remote", ip), zap.String("origin", r.Header.Get("Origin")), zap.Error(err))
		return
	}
	conn.SetReadLimit(hardReadLimit)
	if !h.perAddr.allow(ip, h.Limits.ConnectionsPerMinute) {
		// Upgraded first, so that a browser can be told why.
		h.log.Info("connection refused: too many from this address", zap.String("remote", ip),
			zap.Int("per_minute", h.Limits.ConnectionsPerMinute))
		refuse(conn, errorf(CodeTooManyConnections, "more than %d connections per minute from your address; try again later",
			h.Limits.ConnectionsPerMinute))
		return
	}
	s := &session{
		h:     h,
		conn:  conn,
		log:   h.log.With(zap.String("remote", ip)),
		out:   make(chan []byte, sendQueueSize),
		quit:  make(chan struct{}),
		limit: h.Limits.messageLimiter(),
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		_ = conn.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	h.sessions[s] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.sessions, s)
		h.mu.Unlock()
		h.wg.Done()
	}()
	s.run()
}

// Close ends every session with 1001 (going away), refuses new ones, and
// waits until they are gone.
func (h *Handler) Close() {
	h.mu.Lock()
	h.closed = true
	for s := range h.sessions {
		s.send(errorMsg{Type: TypeError, Error: Error{Code: CodeShuttingDown, Message: "server shutting down"}})
		s.shutdown(websocket.StatusGoingAway, "server shutting down")
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// Drain starts a graceful shutdown: joins are refused from now on, and every
// client is told that its connection ends in grace. Drain returns when no
// participant is left or when ctx ends; Close then ends the rest.
func (h *Handler) Drain(ctx context.Context, grace time.Duration) {
	h.mu.Lock()
	h.draining = true
	for s := range h.sessions {
		s.send(drainingMsg{Type: TypeDraining, Grace: int(grace.Round(time.Second) / time.Second)})
	}
	h.mu.Unlock()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for h.occupancy.participants() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *Handler) isDraining() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.draining
}

// Participants is the number of joined clients.
func (h *Handler) Participants() int { return h.occupancy.participants() }

func (h *Handler) clientIP(r *http.Request) string {
	if h.ClientIP != nil {
		return h.ClientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// refuse tells a client why it cannot have a session and closes the socket.
func refuse(conn *websocket.Conn, e *Error) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if b, err := json.Marshal(errorMsg{Type: TypeError, Error: *e}); err == nil {
		_ = conn.Write(ctx, websocket.MessageText, b)
	}
	_ = conn.Close(websocket.StatusTryAgainLater, e.Code)
}

// session is one client's WebSocket. The read loop owns the participant;
// everything sent goes through out, written by one writer goroutine, so
// that the sfu's events never wait on the network.
type session struct {
	h    *Handler
	conn *websocket.Conn
	log  *zap.Logger
	out  chan []byte

	participant *sfu.Participant
	grant       Grant
	room        string // where this session holds a place (occupancy)
	limit       *rate.Limiter
	bad         int

	quitOnce    sync.Once
	quit        chan struct{}
	closeCode   websocket.StatusCode
	closeReason string
	// closeNow skips the close handshake: the peer is not answering.
	closeNow bool
}

func (s *session) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.writeLoop() }()
	go func() { defer wg.Done(); s.pingLoop() }()
	s.readLoop()
	if s.participant != nil {
		s.participant.Leave()
	}
	if s.room != "" {
		s.h.occupancy.release(s.room)
	}
	s.shutdown(websocket.StatusNormalClosure, "")
	wg.Wait()
}

// shutdown asks the writer to flush what is queued and close the socket
// with code; the first call wins.
func (s *session) shutdown(code websocket.StatusCode, reason string) {
	s.quitOnce.Do(func() {
		s.closeCode, s.closeReason = code, reason
		close(s.quit)
	})
}

func (s *session) writeLoop() {
	write := func(b []byte) bool {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		defer cancel()
		return s.conn.Write(ctx, websocket.MessageText, b) == nil
	}
	for {
		select {
		case b := <-s.out:
			if !write(b) {
				s.shutdown(websocket.StatusInternalError, "write failed")
			}
		case <-s.quit:
			if s.closeNow {
				_ = s.conn.CloseNow()
				return
			}
			for len(s.out) > 0 && write(<-s.out) {
			}
			_ = s.conn.Close(s.closeCode, s.closeReason)
			return
		}
	}
}

func (s *session) pingLoop() {
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		err := s.conn.Ping(ctx)
		cancel()
		if err != nil {
			s.log.Info("client gone: no ping answer", zap.Error(err))
			s.quitOnce.Do(func() {
				// A close handshake with a peer that does not answer would
				// only keep its participant in the room for 5 s more.
				s.closeNow = true
				close(s.quit)
			})
			return
		}
	}
}

func (s *session) readLoop() {
	for {
		typ, r, err := s.conn.Reader(context.Background())
		if err != nil {
			if status := websocket.CloseStatus(err); status == -1 {
				s.log.Debug("websocket read", zap.Error(err))
			}
			return
		}
		size := s.h.Limits.messageSize()
		data, err := io.ReadAll(io.LimitReader(r, int64(size)+1))
		if err != nil {
			return
		}
		if len(data) > size {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
			if !s.reject(errorf(CodeTooLarge, "message over %d bytes discarded", size)) {
				return
			}
			continue
		}
		if s.limit != nil && !s.limit.Allow() {
			s.log.Info("message refused: rate limit", zap.Int("per_second", s.h.Limits.MessagesPerSecond))
			if !s.reject(errorf(CodeRateLimited, "more than %d messages per second; message discarded", s.h.Limits.MessagesPerSecond)) {
				return
			}
			continue
		}
		if typ != websocket.MessageText {
			if !s.reject(errorf(CodeBadMessage, "binary frames are not part of the protocol")) {
				return
			}
			continue
		}
		msg, perr := decode(data)
		if perr == nil {
			perr = s.handle(msg)
		}
		if perr != nil && !s.reject(perr) {
			return
		}
		if msg.Type == TypeLeave && perr == nil {
			return
		}
	}
}

// reject reports a bad message to the client; false once the client has
// sent too many and is being disconnected.
func (s *session) reject(e *Error) bool {
	s.bad++
	s.log.Debug("bad message", zap.String("code", e.Code), zap.String("message", e.Message))
	s.send(errorMsg{Type: TypeError, Error: *e})
	if s.bad >= maxBadMessages {
		s.log.Info("closing client: too many bad messages", zap.Int("count", s.bad))
		s.shutdown(websocket.StatusPolicyViolation, "too many bad messages")
		return false
	}
	return true
}

// handle applies one valid message. A panic in the WebRTC stack on hostile
// input ends this message with an internal error, not the server.
func (s *session) handle(m Message) (perr *Error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic handling message", zap.String("type", m.Type), zap.Any("panic", r), zap.Stack("stack"))
			perr = errorf(CodeInternal, "the server failed to apply %s", m.Type)
		}
	}()
	if m.Type == TypePing {
		s.send(typeMsg{Type: TypePong})
		return nil
	}
	if m.Type == TypeJoin {
		if s.participant != nil {
			return errorf(CodeAlreadyJoined, "this connection already joined a room")
		}
		return s.join(m)
	}
	p := s.participant
	if p == nil {
		return errorf(CodeNotJoined, "send join first")
	}
	if perr := s.grant.permits(m); perr != nil {
		s.log.Info("message refused: not granted", zap.String("type", m.Type), zap.String("code", perr.Code))
		return perr
	}
	switch m.Type {
	case TypeOffer:
		answer, err := p.HandleOffer(m.SDP, m.Sources)
		if err != nil {
			return sfuError(err)
		}
		s.send(sdpMsg{Type: TypeAnswer, Target: TargetPublisher, SDP: answer})
	case TypeAnswer:
		if err := p.HandleAnswer(m.SDP); err != nil {
			return sfuError(err)
		}
	case TypeCandidate:
		peer := sfu.Publisher
		if m.Target == TargetSubscriber {
			peer = sfu.Subscriber
		}
		if err := p.AddCandidate(peer, *m.Candidate); err != nil {
			return sfuError(err)
		}
	case TypeTrackSettings:
		p.SetTrackSettings(m.Track, m.Width, m.Height)
	case TypeLeave:
		p.Leave()
		s.participant = nil
		s.shutdown(websocket.StatusNormalClosure, "left")
	}
	return nil
}

// join admits the client to a room: its token, then the limits, then the sfu.
func (s *session) join(m Message) *Error {
	grant, perr := s.admit(m)
	if perr != nil {
		s.log.Info("join refused", zap.String("room", m.Room), zap.String("identity", grant.Identity),
			zap.String("code", perr.Code), zap.String("reason", perr.Message))
		return perr
	}
	s.grant, s.room = grant, m.Room
	p, err := s.h.rooms.Join(m.Room, grant.Name, s)
	if err != nil {
		s.h.occupancy.release(m.Room)
		s.room = ""
		if errors.Is(err, sfu.ErrServerClosing) {
			return errorf(CodeShuttingDown, "server shutting down")
		}
		s.log.Error("join", zap.Error(err))
		return errorf(CodeInternal, "could not join: %v", err)
	}
	s.participant = p
	if grant.Identity != "" {
		s.log.Info("joined with token", zap.String("room", m.Room), zap.String("identity", grant.Identity),
			zap.String("participant", p.Info().ID), zap.Bool("publish", grant.Publish),
			zap.Bool("subscribe", grant.Subscribe), zap.Bool("admin", grant.Admin))
	}
	return nil
}

// admit checks a join against the token and the limits, and takes a place
// in the room.
func (s *session) admit(m Message) (Grant, *Error) {
	grant := openGrant(m)
	if s.h.Auth != nil {
		var perr *Error
		if grant, perr = s.h.Auth.Verify(m.Token, m.Room); perr != nil {
			return grant, perr
		}
	}
	if s.h.isDraining() {
		return grant, errorf(CodeShuttingDown, "the server is shutting down; join another")
	}
	return grant, s.h.occupancy.reserve(m.Room, s.h.Limits)
}

func sfuError(err error) *Error {
	switch {
	case errors.Is(err, sfu.ErrBadSDP), errors.Is(err, sfu.ErrNoOfferPending):
		return errorf(CodeBadSDP, "%v", err)
	case errors.Is(err, sfu.ErrBadCandidate):
		return errorf(CodeBadCandidate, "%v", err)
	}
	return errorf(CodeInternal, "%v", err)
}

// send queues a message; a client too slow to take its messages is closed
// rather than allowed to hold up the room.
func (s *session) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode message", zap.Error(err))
		return
	}
	select {
	case <-s.quit:
	case s.out <- b:
	default:
		s.log.Warn("closing client: send queue full")
		s.shutdown(websocket.StatusPolicyViolation, "send queue full")
	}
}

// sfu.Events, called by the sfu package.

func (s *session) OnJoined(info sfu.JoinInfo) {
	m := joinedMsg{Type: TypeJoined, You: participant(info.You),
		Participants: make([]participantJSON, 0, len(info.Participants)), Tracks: make([]trackJSON, 0, len(info.Tracks))}
	if s.h.ICEServers != nil {
		m.ICEServers = s.h.ICEServers(info.You.ID)
	}
	for _, p := range info.Participants {
		m.Participants = append(m.Participants, participant(p))
	}
	for _, t := range info.Tracks {
		m.Tracks = append(m.Tracks, track(t))
	}
	s.send(m)
}

// Receives tells the sfu whether this participant gets others' media: not
// without the subscribe right.
func (s *session) Receives() bool { return s.grant.Subscribe }

func (s *session) OnParticipantJoined(p sfu.ParticipantInfo) {
	s.send(participantMsg{Type: TypeParticipantJoined, Participant: participant(p)})
}

func (s *session) OnParticipantLeft(p sfu.ParticipantInfo) {
	s.send(participantMsg{Type: TypeParticipantLeft, Participant: participant(p)})
}

func (s *session) OnTrackPublished(t sfu.TrackInfo) {
	s.send(trackMsg{Type: TypeTrackPublished, Track: track(t)})
}

func (s *session) OnTrackUnpublished(t sfu.TrackInfo) {
	s.send(trackMsg{Type: TypeTrackUnpublished, Track: track(t)})
}

func (s *session) OnOffer(sdp string) {
	s.send(sdpMsg{Type: TypeOffer, Target: TargetSubscriber, SDP: sdp})
}

func (s *session) OnCandidate(peer sfu.Peer, c webrtc.ICECandidateInit) {
	s.send(candidateMsg{Type: TypeCandidate, Target: peer.String(), Candidate: c})
}

func (s *session) OnClosed(reason error) {
	code, status := CodeConnectionFailed, websocket.StatusInternalError
	if errors.Is(reason, sfu.ErrServerClosing) {
		code, status = CodeShuttingDown, websocket.StatusGoingAway
	}
	s.send(errorMsg{Type: TypeError, Error: Error{Code: code, Message: reason.Error()}})
	s.shutdown(status, truncate(reason.Error(), 100))
}

func participant(p sfu.ParticipantInfo) participantJSON {
	return participantJSON{ID: p.ID, Name: p.Name}
}

func track(t sfu.TrackInfo) trackJSON {
	layers := t.Layers
	if layers == nil {
		layers = []string{}
	}
	return trackJSON{ID: t.ID, Participant: t.Participant, Kind: t.Kind.String(), Codec: t.Codec,
		Source: t.Source, Layers: layers}
}
