package sfu

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/rtc"
)

// negotiationTimeout is how long the server waits for a subscriber answer
// before it gives up on the client (not counting time the client is away).
const negotiationTimeout = 15 * time.Second

// failedTimeout is how long a PeerConnection may stay failed while its
// client is connected before the participant is removed: long enough for
// the client's ICE restart, short enough that a client that never
// recovers does not stay in the room as a black tile.
const failedTimeout = 30 * time.Second

// Participant is one client in a room: a publisher PeerConnection that
// receives its media and a subscriber PeerConnection that sends it
// everyone else's.
type Participant struct {
	info   ParticipantInfo
	room   *Room
	events Events
	log    *zap.Logger

	pub, sub *webrtc.PeerConnection
	bwe      rtc.Estimator // of the subscriber connection
	batch    *rtc.Batcher  // of the subscriber connection's sockets; held by forwarding passes
	data     *dataPort     // its end of the room's data (data.go)

	// pubMu and subMu serialize signaling on each PeerConnection and guard
	// the candidates that arrived before the remote description.
	pubMu, subMu                 sync.Mutex
	pubCandidates, subCandidates []webrtc.ICECandidateInit
	// iceRestart asks the next subscriber offer to restart ICE.
	iceRestart           atomic.Bool
	failedTimers         [2]*time.Timer   // per Peer, guarded by mu
	gates                [2]candidateGate // per Peer
	negotiationNeeded    chan struct{}
	allocNeeded          chan struct{}
	answered             chan struct{}
	done                 chan struct{}
	leaveOnce, closeOnce sync.Once
	wg                   sync.WaitGroup

	// reconnecting: the client is away and may resume; guarded by room.mu.
	reconnecting bool

	mu      sync.Mutex
	downs   map[*DownTrack]struct{}        // what this participant receives
	tracks  map[*webrtc.RTPReceiver]*Track // what it publishes
	sources map[string]string              // declared source by mid
	mutes   map[string]bool                // mute state by mid, for tracks not yet received
}

func newParticipant(api *rtc.API, room *Room, name string, events Events, log *zap.Logger) (*Participant, error) {
	p := &Participant{
		info:              ParticipantInfo{ID: randomID(), Name: name},
		room:              room,
		events:            events,
		negotiationNeeded: make(chan struct{}, 1),
		allocNeeded:       make(chan struct{}, 1),
		answered:          make(chan struct{}, 1),
		done:              make(chan struct{}),
		downs:             map[*DownTrack]struct{}{},
		tracks:            map[*webrtc.RTPReceiver]*Track{},
		sources:           map[string]string{},
		mutes:             map[string]bool{},
	}
	p.log = log.With(zap.String("room", room.name), zap.String("participant", p.info.ID))
	var err error
	if p.pub, err = api.NewPublisher(webrtc.Configuration{}); err != nil {
		return nil, fmt.Errorf("publisher peer connection: %w", err)
	}
	if p.sub, p.bwe, p.batch, err = api.NewSubscriber(webrtc.Configuration{}); err != nil {
		_ = p.pub.Close()
		return nil, fmt.Errorf("subscriber peer connection: %w", err)
	}
	for peer, pc := range map[Peer]*webrtc.PeerConnection{Publisher: p.pub, Subscriber: p.sub} {
		pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if c != nil {
				p.gates[peer].candidate(c.ToJSON(), p.sendCandidate(peer))
			}
		})
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			p.log.Debug("connection state", zap.Stringer("peer", peer), zap.Stringer("state", s))
			p.watchFailure(peer, s)
		})
	}
	p.pub.OnTrack(p.onTrack)
	// A data channel gives the first subscriber offer something to carry,
	// so ICE and DTLS come up while the client is still starting its camera
	// and the first remote track plays as soon as it is offered.
	if _, err := p.sub.CreateDataChannel("sfu", nil); err != nil {
		_ = p.pub.Close()
		_ = p.sub.Close()
		return nil, fmt.Errorf("subscriber data channel: %w", err)
	}
	if err := p.openData(); err != nil {
		_ = p.pub.Close()
		_ = p.sub.Close()
		return nil, err
	}
	p.wg.Add(2)
	go func() {
		defer p.contain("negotiation")
		p.negotiate()
	}()
	go func() {
		defer p.contain("allocation")
		p.allocateLoop()
	}()
	return p, nil
}

// Info returns the participant's id and name.
func (p *Participant) Info() ParticipantInfo { return p.info }

// infoLocked is p's info as the others see it; room.mu must be held.
func (p *Participant) infoLocked() ParticipantInfo {
	info := p.info
	info.Reconnecting = p.reconnecting
	return info
}

// SetReconnecting records that the client lost (true) or regained (false)
// its signaling connection; the others are told. While it is away the
// participant keeps its tracks and subscriptions, and a subscriber offer
// waits for its answer.
func (p *Participant) SetReconnecting(away bool) { p.room.setReconnecting(p, away) }

func (p *Participant) isAway() bool {
	p.room.mu.Lock()
	defer p.room.mu.Unlock()
	return p.reconnecting
}

// Resumed is called when the client is back after SetReconnecting(true):
// every video it receives and publishes asks for a keyframe at once, so
// that pictures frozen by the outage recover without waiting for the
// decoders' own requests, and a subscriber connection whose transport is
// not connected is renegotiated with an ICE restart.
func (p *Participant) Resumed() {
	p.mu.Lock()
	for d := range p.downs {
		if d.src.info.Kind == webrtc.RTPCodecTypeVideo {
			if layer, _ := d.Layer(); layer >= 0 {
				d.src.RequestKeyframe(layer)
			}
		}
	}
	for _, t := range p.tracks {
		t.requestKeyframes()
	}
	p.mu.Unlock()
	switch p.sub.ICEConnectionState() {
	case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
	default:
		p.RestartICE()
	}
}

// RestartICE renegotiates the subscriber connection with new ICE
// credentials, which makes both sides gather and check candidates afresh:
// the way back after a network change or a path that died.
func (p *Participant) RestartICE() {
	if p.isDone() {
		return
	}
	p.iceRestart.Store(true)
	p.room.rooms.iceRestarts.Add(1)
	p.requestNegotiation()
}

// PendingOffer returns the subscriber offer that awaits the client's
// answer, if any: a client that resumes may have lost it, or its answer.
func (p *Participant) PendingOffer() (string, bool) {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	if p.sub.SignalingState() != webrtc.SignalingStateHaveLocalOffer || p.sub.LocalDescription() == nil {
		return "", false
	}
	return p.sub.LocalDescription().SDP, true
}

// watchFailure reacts to a connection's state: a failed subscriber
// connection is restarted by the server (it offers that one); a failed
// publisher connection is the client's to restart. Either way a
// connection still failed after failedTimeout ends the participant.
func (p *Participant) watchFailure(peer Peer, s webrtc.PeerConnectionState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	timer := p.failedTimers[peer]
	switch s {
	case webrtc.PeerConnectionStateFailed:
		if peer == Subscriber {
			// Not inline: Pion is inside its own callback here.
			go p.RestartICE()
		}
		if timer == nil {
			p.failedTimers[peer] = time.AfterFunc(failedTimeout, func() {
				if p.isAway() {
					return // the signaling layer's resume grace decides
				}
				p.room.leave(p, ErrConnectionLost)
			})
		}
	case webrtc.PeerConnectionStateConnected, webrtc.PeerConnectionStateClosed:
		if timer != nil {
			timer.Stop()
			p.failedTimers[peer] = nil
		}
	}
}

// Leave removes the participant from its room and closes its connections.
func (p *Participant) Leave() { p.room.leave(p, nil) }

func (p *Participant) sendCandidate(peer Peer) func(webrtc.ICECandidateInit) {
	return func(c webrtc.ICECandidateInit) { p.events.OnCandidate(peer, c) }
}

// HandleOffer applies a publisher offer and sends the answer (OnAnswer).
// sources declares what each transceiver (by mid) carries: camera,
// microphone or screen.
func (p *Participant) HandleOffer(sdp string, sources map[string]string) error {
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	p.mu.Lock()
	for mid, src := range sources {
		switch src {
		case SourceCamera, SourceMicrophone, SourceScreen:
			if len(p.sources) < maxSources {
				p.sources[mid] = src
			}
		}
	}
	p.mu.Unlock()
	if err := p.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		if p.isDone() {
			return ErrClosed
		}
		return fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	answer, err := p.pub.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	gate := &p.gates[Publisher]
	gate.hold()
	if err := p.pub.SetLocalDescription(answer); err != nil {
		gate.release(nil, p.sendCandidate(Publisher))
		return fmt.Errorf("set publisher answer: %w", err)
	}
	gate.release(func() { p.events.OnAnswer(answer.SDP) }, p.sendCandidate(Publisher))
	p.pubCandidates = p.addPending(p.pub, p.pubCandidates)
	return nil
}

// HandleAnswer applies the client's answer to the pending subscriber offer.
func (p *Participant) HandleAnswer(sdp string) error {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	if p.sub.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		return ErrNoOfferPending
	}
	if err := p.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		if p.isDone() {
			return ErrClosed
		}
		return fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	p.subCandidates = p.addPending(p.sub, p.subCandidates)
	select {
	case p.answered <- struct{}{}:
	default:
	}
	return nil
}

// AddCandidate applies a trickled ICE candidate from the client, holding it
// until the remote description it belongs to is set.
func (p *Participant) AddCandidate(peer Peer, c webrtc.ICECandidateInit) error {
	if c.Candidate == "" {
		return nil // end of candidates
	}
	mu, pc, pending := &p.pubMu, p.pub, &p.pubCandidates
	if peer == Subscriber {
		mu, pc, pending = &p.subMu, p.sub, &p.subCandidates
	}
	mu.Lock()
	defer mu.Unlock()
	if pc.RemoteDescription() == nil {
		if len(*pending) >= maxPendingCandidates {
			return fmt.Errorf("%w: too many candidates before the offer", ErrBadCandidate)
		}
		*pending = append(*pending, c)
		return nil
	}
	if err := pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: %v", ErrBadCandidate, err)
	}
	return nil
}

const maxPendingCandidates = 64

func (p *Participant) addPending(pc *webrtc.PeerConnection, pending []webrtc.ICECandidateInit) []webrtc.ICECandidateInit {
	for _, c := range pending {
		if err := pc.AddICECandidate(c); err != nil {
			p.log.Debug("queued candidate rejected", zap.Error(err))
		}
	}
	return nil
}

// maxSources bounds what a client can make the server remember.
const maxSources = 16

// onTrack runs for each incoming stream: the first layer of a track
// publishes it to the room, later simulcast layers join it. Each layer is
// forwarded until it ends; the track is unpublished when the last one does.
func (p *Participant) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	mid := ""
	for _, tr := range p.pub.GetTransceivers() {
		if tr.Receiver() == receiver {
			mid = tr.Mid()
		}
	}
	p.mu.Lock()
	t, existed := p.tracks[receiver]
	if !existed {
		source := p.sources[mid]
		if source == "" {
			source = SourceCamera
			if remote.Kind() == webrtc.RTPCodecTypeAudio {
				source = SourceMicrophone
			}
		}
		info := TrackInfo{ID: randomID(), Participant: p.info.ID, Kind: remote.Kind(),
			Codec: remote.Codec().MimeType, Source: source}
		info.Muted = p.mutes[mid]
		t = newTrack(info, mid, remote.Codec(), p.pub.WriteRTCP, p.log.With(zap.String("track", info.ID)))
		t.muted.Store(info.Muted) // not yet forwarded: no down-track to reset
		for _, e := range receiver.GetParameters().HeaderExtensions {
			if e.URI == sdp.AudioLevelURI && e.ID > 0 && e.ID < 15 {
				t.levelExt = uint8(e.ID)
			}
		}
		p.tracks[receiver] = t
	}
	p.mu.Unlock()
	l, ok := t.addLayer(remote)
	if !ok {
		p.log.Warn("ignoring stream", zap.String("rid", remote.RID()), zap.Uint32("ssrc", uint32(remote.SSRC())))
		return
	}
	p.log.Info("stream published", zap.String("track", t.info.ID), zap.String("codec", t.info.Codec),
		zap.String("source", t.info.Source), zap.String("rid", remote.RID()), zap.Uint32("ssrc", l.ssrc),
		zap.Uint8("audio_level_ext", t.levelExt))
	// Reading each stream's RTCP (sender reports) keeps the report
	// interceptor's round-trip figures right and its buffer drained. A
	// simulcast receiver has one RTCP stream per rid (Read would use one
	// that does not exist yet).
	go func(rid string) {
		defer p.contain("publisher RTCP")
		buf := make([]byte, 1500)
		for {
			var err error
			if rid == "" {
				_, _, err = receiver.Read(buf)
			} else {
				_, _, err = receiver.ReadSimulcast(buf, rid)
			}
			if err != nil {
				return
			}
		}
	}(remote.RID())
	go func() {
		defer p.contain("forwarding")
		if !existed {
			if !p.room.publish(p, t) {
				return // p left meanwhile; closing its connection ends the track
			}
		} else {
			p.room.updated(t)
		}
		if t.forward(l) {
			p.room.unpublish(t)
			p.mu.Lock()
			delete(p.tracks, receiver)
			p.mu.Unlock()
		}
	}()
}

// subscribe adds a down-track of t to this participant's subscriber connection.
func (p *Participant) subscribe(t *Track) {
	if r, ok := p.events.(Receiver); ok && !r.Receives() {
		return
	}
	d := newDownTrack(t, p)
	sender, err := p.sub.AddTrack(d)
	if err != nil {
		if !p.isDone() {
			p.log.Warn("subscribe", zap.String("track", t.info.ID), zap.Error(err))
		}
		return
	}
	d.sender = sender
	p.mu.Lock()
	p.downs[d] = struct{}{}
	p.mu.Unlock()
	if !t.addDownTrack(d) {
		p.unsubscribe(d)
		return
	}
	go func() {
		defer p.contain("subscriber RTCP")
		d.readRTCP()
	}()
	p.requestNegotiation()
}

// unsubscribe removes a down-track, e.g. because its publisher left.
func (p *Participant) unsubscribe(d *DownTrack) {
	p.mu.Lock()
	delete(p.downs, d)
	p.mu.Unlock()
	if err := p.sub.RemoveTrack(d.sender); err != nil && !p.isDone() {
		p.log.Debug("remove track", zap.Error(err))
	}
	p.requestNegotiation()
}

func (p *Participant) requestNegotiation() {
	select {
	case p.negotiationNeeded <- struct{}{}:
	default: // one is already due; it will include this change
	}
}

// negotiate sends subscriber offers one at a time: the next offer waits for
// the answer to the last, so the server and the client never offer at once.
func (p *Participant) negotiate() {
	defer p.wg.Done()
	timer := time.NewTimer(negotiationTimeout)
	timer.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-p.negotiationNeeded:
		}
		var opts *webrtc.OfferOptions
		if p.iceRestart.Swap(false) {
			opts = &webrtc.OfferOptions{ICERestart: true}
			p.log.Info("subscriber ICE restart")
		}
		gate := &p.gates[Subscriber]
		gate.hold()
		p.subMu.Lock()
		offer, err := p.sub.CreateOffer(opts)
		if err == nil {
			err = p.sub.SetLocalDescription(offer)
		}
		p.subMu.Unlock()
		if err != nil {
			gate.release(nil, p.sendCandidate(Subscriber))
			if !p.isDone() {
				p.log.Error("subscriber offer", zap.Error(err))
				go p.room.leave(p, fmt.Errorf("subscriber offer: %w", err))
			}
			return
		}
		gate.release(func() { p.events.OnOffer(offer.SDP) }, p.sendCandidate(Subscriber))
		if !p.awaitAnswer(timer) {
			return
		}
	}
}

// awaitAnswer waits for the answer to the offer just sent; false when the
// participant is gone or the client took too long while connected.
func (p *Participant) awaitAnswer(timer *time.Timer) bool {
	timer.Reset(negotiationTimeout)
	for {
		select {
		case <-p.done:
			timer.Stop()
			return false
		case <-p.answered:
			timer.Stop()
			return true
		case <-timer.C:
			if p.isAway() {
				// The offer is replayed when the client resumes.
				timer.Reset(negotiationTimeout)
				continue
			}
			go p.room.leave(p, ErrNegotiationTime)
			return false
		}
	}
}

func (p *Participant) isDone() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// close tears down both connections; the room has already forgotten p.
func (p *Participant) close() {
	p.closeOnce.Do(func() {
		close(p.done)
		p.mu.Lock()
		for _, t := range p.failedTimers {
			if t != nil {
				t.Stop()
			}
		}
		p.mu.Unlock()
		p.mu.Lock()
		downs := p.downs
		p.downs = map[*DownTrack]struct{}{}
		p.mu.Unlock()
		for d := range downs {
			d.src.removeDownTrack(d)
		}
		if err := p.sub.Close(); err != nil {
			p.log.Debug("close subscriber", zap.Error(err))
		}
		if err := p.pub.Close(); err != nil {
			p.log.Debug("close publisher", zap.Error(err))
		}
		p.wg.Wait()
	})
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
