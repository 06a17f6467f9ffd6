package signal

import (
	"context"
	"encoding/json"
	"errors"
	"io"
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
	// placementTimeout bounds how long a join waits on the cluster's
	// registry (a claim on a new room) before it is placed here.
	placementTimeout = 2 * time.Second
	// sendQueueSize holds a full replay (outboxMessages) and then some.
	sendQueueSize = outboxMessages + 256
)

// session is one client's WebSocket. The read loop drives the member it
// joined or resumed; everything sent goes through out, written by one
// writer goroutine, so that the sfu's events never wait on the network.
type session struct {
	h     *Handler
	conn  *websocket.Conn
	log   *zap.Logger
	out   chan []byte
	limit *rate.Limiter
	bad   int

	member *member // once joined or resumed

	quitOnce    sync.Once
	quit        chan struct{}
	closeCode   websocket.StatusCode
	closeReason string
	// broken: the connection failed (no pong, a failed write): skip the
	// close handshake, and keep the participant for a resume.
	broken bool
	// clientLeft: the client sent leave or closed the socket itself.
	clientLeft bool
}

func (s *session) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.writeLoop() }()
	go func() { defer wg.Done(); s.pingLoop() }()
	s.readLoop()
	broken := s.isBroken()
	s.shutdown(websocket.StatusNormalClosure, "")
	if s.member != nil {
		s.member.lost(s, broken)
	}
	wg.Wait()
}

// isBroken says whether the socket ended without either side closing it on
// purpose: the network or the client's machine went away.
func (s *session) isBroken() bool {
	if s.clientLeft {
		return false
	}
	select {
	case <-s.quit:
		return s.broken // the server closed it: on purpose unless broken
	default:
		return true // the read failed with no close frame from the client
	}
}

// shutdown asks the writer to flush what is queued and close the socket
// with code; the first call wins.
func (s *session) shutdown(code websocket.StatusCode, reason string) {
	s.quitOnce.Do(func() {
		s.closeCode, s.closeReason = code, reason
		close(s.quit)
	})
}

// fail ends a socket that no longer works, without a close handshake: a
// peer that does not answer would only hold everything up for 5 s more.
func (s *session) fail(why string) {
	s.quitOnce.Do(func() {
		s.broken = true
		s.closeReason = why
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
				s.fail("write failed")
			}
		case <-s.quit:
			if s.broken {
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
			s.fail("no ping answer")
			return
		}
	}
}

func (s *session) readLoop() {
	for {
		typ, r, err := s.conn.Reader(context.Background())
		if err != nil {
			switch websocket.CloseStatus(err) {
			case -1:
				s.log.Debug("websocket read", zap.Error(err))
			case websocket.StatusNormalClosure, websocket.StatusGoingAway:
				// The client closed on purpose (a closed tab sends 1001).
				s.clientLeft = true
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
			sfu.CountPanic()
			s.log.Error("panic handling message", zap.String("type", m.Type), zap.Any("panic", r), zap.Stack("stack"))
			perr = errorf(CodeInternal, "the server failed to apply %s", m.Type)
		}
	}()
	switch m.Type {
	case TypePing:
		s.send(typeMsg{Type: TypePong})
		return nil
	case TypeJoin, TypeResume:
		if s.member != nil {
			return errorf(CodeAlreadyJoined, "this connection already joined a room")
		}
		if m.Type == TypeResume {
			return s.resume(m)
		}
		return s.join(m)
	}
	mem := s.member
	if mem == nil {
		return errorf(CodeNotJoined, "send join first")
	}
	if !mem.current(s) {
		// Another socket took the session over; what still arrives on this
		// one is from before, and the client has resent what it needs.
		return nil
	}
	p := mem.participant
	if perr := mem.grant.permits(m); perr != nil {
		s.log.Info("message refused: not granted", zap.String("type", m.Type), zap.String("code", perr.Code))
		return perr
	}
	switch m.Type {
	case TypeOffer:
		if err := p.HandleOffer(m.SDP, m.Sources); err != nil {
			return sfuError(err)
		}
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
	case TypeRestartICE:
		p.RestartICE()
	case TypeMute:
		p.SetMuted(m.Mid, *m.Muted)
	case TypeModerate:
		return moderate(p, m)
	case TypeTrackSettings:
		p.SetTrackSettings(m.Track, m.Width, m.Height)
	case TypeLeave:
		s.clientLeft = true
		mem.end(&closeAs{status: websocket.StatusNormalClosure, reason: "left"}, true)
	}
	return nil
}

// join admits the client to a room: its token, the session it replaces,
// then the limits, then the sfu.
func (s *session) join(msg Message) *Error {
	grant := openGrant(msg)
	if s.h.Auth != nil {
		var perr *Error
		if grant, perr = s.h.Auth.Verify(msg.Token, msg.Room); perr != nil {
			return s.refused(msg, grant, perr)
		}
	}
	if pl := s.h.Placement; pl != nil {
		ctx, cancel := context.WithTimeout(context.Background(), placementTimeout)
		to := pl.Place(ctx, msg.Room, msg.Avoid, msg.Ticket)
		cancel()
		if to != nil {
			s.log.Info("join redirected", zap.String("room", msg.Room), zap.String("node", to.Node), zap.String("url", to.URL))
			s.send(redirectMsg{Type: TypeRedirect, URL: to.URL, Node: to.Node, Ticket: to.Ticket})
			s.shutdown(StatusRedirected, "redirected to "+to.Node)
			return nil
		}
	}
	if s.h.isDraining() {
		return s.refused(msg, grant, errorf(CodeShuttingDown, "the server is shutting down; join another"))
	}
	// A reloaded page, or a client whose resume failed, joins again: the
	// session it had ends first, so that it never appears twice and its
	// place counts once.
	if old := s.h.previous(msg.Room, grant.Identity, msg.Replace); old != nil {
		old.log.Info("session replaced by a new join")
		s.h.stats.rejoins.Add(1)
		old.end(&closeAs{status: StatusReplaced, reason: "joined again elsewhere",
			err: errorf(CodeReplaced, "you joined this room again from another connection")}, true)
	}
	if perr := s.h.occupancy.reserve(msg.Room, s.h.Limits); perr != nil {
		return s.refused(msg, grant, perr)
	}
	mem := &member{h: s.h, grant: grant, room: msg.Room, identity: grant.Identity, secret: newSecret(), sess: s, log: s.log}
	p, err := s.h.rooms.Join(msg.Room, grant.Name, mem)
	if err != nil {
		s.h.occupancy.release(msg.Room)
		if errors.Is(err, sfu.ErrServerClosing) {
			return errorf(CodeShuttingDown, "server shutting down")
		}
		s.log.Error("join", zap.Error(err))
		return errorf(CodeInternal, "could not join: %v", err)
	}
	mem.mu.Lock()
	mem.participant = p
	mem.log = s.log.With(zap.String("participant", p.Info().ID))
	mem.mu.Unlock()
	s.h.register(mem)
	s.member = mem
	if grant.Identity != "" {
		s.log.Info("joined with token", zap.String("room", msg.Room), zap.String("identity", grant.Identity),
			zap.String("participant", p.Info().ID), zap.Bool("publish", grant.Publish),
			zap.Bool("subscribe", grant.Subscribe), zap.Bool("admin", grant.Admin))
	}
	return nil
}

func (s *session) refused(msg Message, grant Grant, perr *Error) *Error {
	s.log.Info("join refused", zap.String("room", msg.Room), zap.String("identity", grant.Identity),
		zap.String("code", perr.Code), zap.String("reason", perr.Message))
	return perr
}

// resume reattaches the client to the session its secret names.
func (s *session) resume(msg Message) *Error {
	mem := s.h.member(msg.Secret)
	if mem == nil {
		s.h.stats.resumeFailures.Add(1)
		s.log.Info("resume refused: no such session")
		return errorf(CodeResumeFailed, "no session to resume (it ended, or the server restarted); join again")
	}
	if perr := mem.attach(s, msg.Seq); perr != nil {
		s.h.stats.resumeFailures.Add(1)
		mem.log.Info("resume refused", zap.String("reason", perr.Message))
		return perr
	}
	s.h.stats.resumes.Add(1)
	s.member = mem
	mem.log.Info("session resumed", zap.Uint64("seq", msg.Seq))
	return nil
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

// send queues a message that is about this connection only (pong, errors,
// joined): it is not numbered or kept for a resume.
func (s *session) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode message", zap.Error(err))
		return
	}
	s.queue(b)
}

// queue hands b to the writer; a client too slow to take its messages is
// disconnected rather than allowed to hold up the room (its member keeps
// them for a resume).
func (s *session) queue(b []byte) {
	select {
	case <-s.quit:
	case s.out <- b:
	default:
		s.log.Warn("closing client: send queue full")
		s.fail("send queue full")
	}
}

// moderate applies a moderator's action (the grant was checked).
func moderate(p *sfu.Participant, m Message) *Error {
	var err error
	switch m.Action {
	case "mute":
		kind := webrtc.RTPCodecTypeAudio
		if m.Kind == "video" {
			kind = webrtc.RTPCodecTypeVideo
		}
		err = p.MuteOther(m.Participant, kind)
	case "remove":
		err = p.Remove(m.Participant, m.Reason)
	case "end-room":
		p.EndRoom(m.Reason)
	}
	if errors.Is(err, sfu.ErrNoParticipant) {
		return errorf(CodeNoParticipant, "no participant %q in this room", truncate(m.Participant, 64))
	}
	if err != nil {
		return errorf(CodeInternal, "%v", err)
	}
	return nil
}
