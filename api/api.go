// Package api is the server's HTTP API for the application that embeds
// it: list rooms and their participants, remove or mute a participant,
// send a room a message, end a room (docs/api.md). It is authenticated with
// an admin token (a JWT with the admin right, signed with the join token
// secret) or the API key.
package api

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/sfu"
	"github.com/switchboard-sfu/switchboard/signal"
)

// Prefix is where the API is served.
const Prefix = "/api/"

// maxBody is the largest request body read.
const maxBody = 256 << 10

// Handler serves the API under Prefix.
type Handler struct {
	rooms *sfu.Rooms
	auth  *signal.Auth // nil: admin tokens are not accepted
	key   []byte       // nil: the API key is not accepted
	log   *zap.Logger
	mux   *http.ServeMux
}

// New returns the API of rooms. auth checks admin tokens and key is the
// API key; with neither, every request is refused (401).
func New(rooms *sfu.Rooms, auth *signal.Auth, key string, log *zap.Logger) *Handler {
	h := &Handler{rooms: rooms, auth: auth, log: log, mux: http.NewServeMux()}
	if key != "" {
		h.key = []byte(key)
	}
	h.mux.HandleFunc("GET /api/rooms", h.listRooms)
	h.mux.HandleFunc("GET /api/rooms/{room}", h.getRoom)
	h.mux.HandleFunc("DELETE /api/rooms/{room}", h.endRoom)
	h.mux.HandleFunc("DELETE /api/rooms/{room}/participants/{id}", h.remove)
	h.mux.HandleFunc("POST /api/rooms/{room}/participants/{id}/mute", h.mute)
	h.mux.HandleFunc("POST /api/rooms/{room}/data", h.sendData)
	h.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := h.authorize(w, r, ""); ok {
			fail(w, http.StatusNotFound, "not-found", "no such endpoint: "+r.Method+" "+r.URL.Path)
		}
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Error codes of the API's answers.
const (
	CodeUnauthorized  = "unauthorized"
	CodeForbidden     = "forbidden"
	CodeNoRoom        = "no-such-room"
	CodeNoParticipant = "no-such-participant"
	CodeBadRequest    = "bad-request"
)

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func fail(w http.ResponseWriter, status int, code, message string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, message
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
	}
	reply(w, status, b)
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// authorize checks the request's credentials for room ("" for every room:
// an API key or an admin token for all rooms, signal.AllRooms; or, for
// listing, any admin token, which then sees only its room). It answers the
// request itself when they fall short. scope is the room the caller may
// see, signal.AllRooms for all.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, room string) (scope string, ok bool) {
	token, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	if !found || token == "" {
		fail(w, http.StatusUnauthorized, CodeUnauthorized, "this API needs an Authorization: Bearer header with an admin token or the API key")
		return "", false
	}
	if h.key != nil && subtle.ConstantTimeCompare([]byte(token), h.key) == 1 {
		return signal.AllRooms, true
	}
	if h.auth == nil {
		fail(w, http.StatusUnauthorized, CodeUnauthorized, "the API key is not valid")
		return "", false
	}
	g, err := h.auth.VerifyAdmin(token)
	if err != nil {
		fail(w, http.StatusUnauthorized, CodeUnauthorized, err.Message)
		return "", false
	}
	if !g.Admin {
		fail(w, http.StatusForbidden, CodeForbidden, "the token does not have the admin right")
		return "", false
	}
	if g.Room != signal.AllRooms && room != "" && g.Room != room {
		fail(w, http.StatusForbidden, CodeForbidden, `the token is for another room (use room "*" for all rooms)`)
		return "", false
	}
	return g.Room, true
}

// Room is a room as the API describes it.
type Room struct {
	Name         string        `json:"name"`
	Participants []Participant `json:"participants"`
}

// Participant is a participant of a room, with its tracks.
type Participant struct {
	ID           string  `json:"id"`
	Name         string  `json:"name"`
	Reconnecting bool    `json:"reconnecting"`
	Tracks       []Track `json:"tracks"`
}

// Track is a published track.
type Track struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Source string `json:"source"`
	Codec  string `json:"codec"`
	Muted  bool   `json:"muted"`
}

func room(info sfu.RoomInfo) Room {
	out := Room{Name: info.Name, Participants: make([]Participant, 0, len(info.Participants))}
	for _, p := range info.Participants {
		jp := Participant{ID: p.ID, Name: p.Name, Reconnecting: p.Reconnecting, Tracks: make([]Track, 0, len(p.Tracks))}
		for _, t := range p.Tracks {
			jp.Tracks = append(jp.Tracks, Track{ID: t.ID, Kind: t.Kind.String(), Source: t.Source, Codec: t.Codec, Muted: t.Muted})
		}
		out.Participants = append(out.Participants, jp)
	}
	return out
}

func (h *Handler) listRooms(w http.ResponseWriter, r *http.Request) {
	scope, ok := h.authorize(w, r, "")
	if !ok {
		return
	}
	out := struct {
		Rooms []Room `json:"rooms"`
	}{Rooms: []Room{}}
	for _, info := range h.rooms.List() {
		if scope == signal.AllRooms || info.Name == scope {
			out.Rooms = append(out.Rooms, room(info))
		}
	}
	reply(w, http.StatusOK, out)
}

func (h *Handler) getRoom(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("room")
	if _, ok := h.authorize(w, r, name); !ok {
		return
	}
	info, err := h.rooms.Room(name)
	if err != nil {
		h.failWith(w, err)
		return
	}
	reply(w, http.StatusOK, room(info))
}

// body decodes the request's JSON body into v; an empty body leaves v as
// it is when optional.
func body(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		fail(w, http.StatusBadRequest, CodeBadRequest, "reading the body: "+err.Error())
		return false
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		if optional {
			return true
		}
		fail(w, http.StatusBadRequest, CodeBadRequest, "a JSON body is needed")
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, http.StatusBadRequest, CodeBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

type reasonBody struct {
	Reason string `json:"reason"`
}

func (h *Handler) remove(w http.ResponseWriter, r *http.Request) {
	name, id := r.PathValue("room"), r.PathValue("id")
	if _, ok := h.authorize(w, r, name); !ok {
		return
	}
	var in reasonBody
	if !body(w, r, &in, true) {
		return
	}
	if err := h.rooms.Remove(name, id, in.Reason); err != nil {
		h.failWith(w, err)
		return
	}
	h.log.Info("participant removed", zap.String("room", name), zap.String("participant", id))
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) mute(w http.ResponseWriter, r *http.Request) {
	name, id := r.PathValue("room"), r.PathValue("id")
	if _, ok := h.authorize(w, r, name); !ok {
		return
	}
	var in struct {
		Kind string `json:"kind"`
	}
	if !body(w, r, &in, false) {
		return
	}
	kind := webrtc.NewRTPCodecType(in.Kind)
	if kind == 0 {
		fail(w, http.StatusBadRequest, CodeBadRequest, `kind must be "audio" or "video"`)
		return
	}
	if err := h.rooms.Mute(name, id, kind); err != nil {
		h.failWith(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) sendData(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("room")
	if _, ok := h.authorize(w, r, name); !ok {
		return
	}
	var in struct {
		Text string `json:"text"`
	}
	if !body(w, r, &in, false) {
		return
	}
	if err := h.rooms.SendData(name, in.Text); err != nil {
		h.failWith(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) endRoom(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("room")
	if _, ok := h.authorize(w, r, name); !ok {
		return
	}
	var in reasonBody
	if !body(w, r, &in, true) {
		return
	}
	if err := h.rooms.End(name, in.Reason); err != nil {
		h.failWith(w, err)
		return
	}
	h.log.Info("room ended", zap.String("room", name))
	w.WriteHeader(http.StatusNoContent)
}

// failWith answers an error of Rooms.
func (h *Handler) failWith(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, sfu.ErrNoRoom):
		fail(w, http.StatusNotFound, CodeNoRoom, err.Error())
	case errors.Is(err, sfu.ErrNoParticipant):
		fail(w, http.StatusNotFound, CodeNoParticipant, err.Error())
	case errors.Is(err, sfu.ErrEmptyData), errors.Is(err, sfu.ErrDataTooLarge):
		fail(w, http.StatusBadRequest, CodeBadRequest, err.Error())
	default:
		h.log.Error("API request failed", zap.Error(err))
		fail(w, http.StatusInternalServerError, "internal", err.Error())
	}
}
