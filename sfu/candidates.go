package sfu

import (
	"sync"

	"github.com/pion/webrtc/v4"
)

// candidateGate keeps the server's ICE candidates of one PeerConnection
// behind the description they belong to. Pion gathers as soon as a local
// description is set, before the offer or answer has been sent: without
// the gate, a candidate of an ICE restart could reach the client first,
// and the client would drop it against the old credentials.
type candidateGate struct {
	mu    sync.Mutex
	held  bool
	queue []webrtc.ICECandidateInit
}

// candidate sends c now, or later if the description is still on its way.
func (g *candidateGate) candidate(c webrtc.ICECandidateInit, send func(webrtc.ICECandidateInit)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held {
		g.queue = append(g.queue, c)
		return
	}
	send(c)
}

// hold keeps candidates back until release.
func (g *candidateGate) hold() {
	g.mu.Lock()
	g.held = true
	g.mu.Unlock()
}

// release sends the description (first, if any), then what was held.
func (g *candidateGate) release(description func(), send func(webrtc.ICECandidateInit)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if description != nil {
		description()
	}
	for _, c := range g.queue {
		send(c)
	}
	g.queue, g.held = nil, false
}
