package signal

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/sfu"
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
	// ResumeGrace is how long a participant whose WebSocket broke stays in
	// its room for its client to resume; 0 ends it at once.
	ResumeGrace time.Duration
	// Placement, when set, is the cluster's: a join that belongs on
	// another node is redirected there (docs/protocol.md, redirect).
	Placement Placement
	// NodeID names this server in its cluster (joined.node).
	NodeID string

	occupancy occupancy
	perAddr   perAddress
	stats     resumeStats

	mu       sync.Mutex
	sessions map[*session]struct{}
	members  map[string]*member // by resume secret
	byID     map[string]*member // by room and token identity
	closed   bool
	draining bool
	wg       sync.WaitGroup
}

// Placement decides which node of a cluster takes a join.
type Placement interface {
	// Place returns nil to take a join for room here, or the node to send
	// the client to; avoid is a node the client said it could not reach,
	// ticket what an earlier redirect gave it.
	Place(ctx context.Context, room, avoid, ticket string) *Redirect
	// MoveTo is a serving node for the clients of a draining server, nil
	// if there is none.
	MoveTo() *Redirect
	// Origins are the hosts of the other nodes, whose pages may open this
	// node's WebSocket.
	Origins() []string
}

// Redirect names another node of the cluster.
type Redirect struct {
	URL  string
	Node string
	// Ticket goes back in the join at Node, which takes it without
	// placing it again (so that placements never loop).
	Ticket string
}

// NewHandler returns a handler that joins clients to rooms.
func NewHandler(rooms *sfu.Rooms, log *zap.Logger) *Handler {
	return &Handler{rooms: rooms, log: log, sessions: map[*session]struct{}{},
		members: map[string]*member{}, byID: map[string]*member{}}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip := h.clientIP(r)
	origins := h.OriginPatterns
	if h.Placement != nil {
		origins = append(slices.Clip(origins), h.Placement.Origins()...)
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: origins})
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
	// Those whose clients were away have nobody to tell.
	h.mu.Lock()
	away := slices.Collect(maps.Values(h.members))
	h.mu.Unlock()
	for _, m := range away {
		m.end(nil, true)
	}
}

// Drain starts a graceful shutdown: joins are refused from now on, and every
// client is told that its connection ends in grace. Drain returns when no
// participant is left or when ctx ends; Close then ends the rest.
func (h *Handler) Drain(ctx context.Context, grace time.Duration) {
	msg := drainingMsg{Type: TypeDraining, Grace: int(grace.Round(time.Second) / time.Second)}
	if h.Placement != nil {
		if to := h.Placement.MoveTo(); to != nil {
			msg.URL, msg.Node = to.URL, to.Node
		}
	}
	h.mu.Lock()
	h.draining = true
	for s := range h.sessions {
		s.send(msg)
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

func (h *Handler) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

func identityKey(room, identity string) string { return room + "\x00" + identity }

// register makes m findable by its resume secret and its identity.
func (h *Handler) register(m *member) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.members[m.secret] = m
	if m.identity != "" {
		h.byID[identityKey(m.room, m.identity)] = m
	}
}

func (h *Handler) forget(m *member) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.members[m.secret] == m {
		delete(h.members, m.secret)
	}
	if k := identityKey(m.room, m.identity); m.identity != "" && h.byID[k] == m {
		delete(h.byID, k)
	}
}

// previous finds the session a join replaces: the same identity in the
// same room, or the session whose resume secret the join names.
func (h *Handler) previous(room, identity, secret string) *member {
	h.mu.Lock()
	defer h.mu.Unlock()
	if identity != "" {
		if m := h.byID[identityKey(room, identity)]; m != nil {
			return m
		}
	}
	if m := h.members[secret]; secret != "" && m != nil && m.room == room && m.identity == identity {
		return m
	}
	return nil
}

func (h *Handler) member(secret string) *member {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.members[secret]
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
