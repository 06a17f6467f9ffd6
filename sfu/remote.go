package sfu

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/rtc"
)

// Remote participants. In a cluster a room may have participants on other
// nodes (package cluster places them and carries their media). Here they
// are participants like any other to this node's own: they are listed in
// joined, come and go with participant-joined and participant-left, and
// their tracks are Tracks whose layers are read from sources the cluster
// supplies, so the forwarding loop, the allocator and the retransmission
// cache work on them unchanged. A node shows remote participants only in
// rooms it has participants of its own in; the room's API listing and the
// node's roster name local participants only.

// ErrNoLocalRoom: the room has no participants on this node.
var ErrNoLocalRoom = errors.New("the room is not open on this node")

// AddRemote adds a participant of room who is on another node.
func (rs *Rooms) AddRemote(room string, info ParticipantInfo) error {
	r, err := rs.room(room)
	if err != nil {
		return ErrNoLocalRoom
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, local := r.participants[info.ID]; local {
		return fmt.Errorf("participant %s is local", info.ID)
	}
	old, known := r.remotes[info.ID]
	r.remotes[info.ID] = info
	for _, o := range r.participants {
		switch {
		case !known:
			o.events.OnParticipantJoined(info)
		case old.Reconnecting != info.Reconnecting:
			o.events.OnParticipantUpdated(info)
		}
	}
	return nil
}

// RemoveRemote takes a remote participant, and its tracks, out of room.
func (rs *Rooms) RemoveRemote(room, id string) {
	r, err := rs.room(room)
	if err != nil {
		return
	}
	r.mu.Lock()
	info, ok := r.remotes[id]
	if !ok {
		r.mu.Unlock()
		return
	}
	delete(r.remotes, id)
	theirs := r.removeTracksLocked(info)
	r.mu.Unlock()
	for _, t := range theirs {
		r.drop(t)
	}
}

// RemoteTrack is a track of a remote participant, published here.
type RemoteTrack struct {
	t    *Track
	room *Room
	once sync.Once
}

// PublishRemote makes a remote participant's track available to room's
// participants. sources are its layers' streams (each found by its RID);
// keyframe asks the publisher's node for a keyframe on the layer whose
// source has the given SSRC. The track ends when its sources do, or with
// Unpublish.
//
// levelExt is the audio level extension's id in the packets (0: none), as
// the track's node numbered it: the packets cross unchanged, so the room
// here ranks the remote speaker as its own.
func (rs *Rooms) PublishRemote(room string, info TrackInfo, sources []LayerSource, levelExt uint8, keyframe func(ssrc uint32)) (*RemoteTrack, error) {
	params, ok := rtc.CodecParameters(info.Codec)
	if !ok {
		return nil, fmt.Errorf("codec %q is not one this server forwards", info.Codec)
	}
	r, err := rs.room(room)
	if err != nil {
		return nil, ErrNoLocalRoom
	}
	writeRTCP := func(pkts []rtcp.Packet) error {
		for _, p := range pkts {
			if pli, ok := p.(*rtcp.PictureLossIndication); ok {
				keyframe(pli.MediaSSRC)
			}
		}
		return nil
	}
	info.Layers = nil
	t := newTrack(info, "", params, writeRTCP, rs.log.With(zap.String("track", info.ID), zap.Bool("remote", true)))
	t.muted.Store(info.Muted)
	if info.Kind == webrtc.RTPCodecTypeAudio && levelExt > 0 && levelExt < 15 {
		t.levelExt = levelExt
	}
	var layers []*layer
	for _, src := range sources {
		if l, ok := t.addLayer(src); ok {
			layers = append(layers, l)
		}
	}
	r.mu.Lock()
	if _, ok := r.remotes[info.Participant]; !ok || r.tracks[info.ID] != nil {
		r.mu.Unlock()
		t.close()
		return nil, fmt.Errorf("track %s: no such remote participant, or published already", info.ID)
	}
	r.tracks[info.ID] = t
	subs := make([]*Participant, 0, len(r.participants))
	for _, o := range r.participants {
		subs = append(subs, o)
	}
	r.mu.Unlock()
	published := t.Info()
	for _, s := range subs {
		s.events.OnTrackPublished(published)
		s.subscribe(t)
	}
	rt := &RemoteTrack{t: t, room: r}
	for _, l := range layers {
		go func() {
			defer rs.contain("relayed track forwarding")
			if t.forward(l) {
				rt.Unpublish()
			}
		}()
	}
	return rt, nil
}

// Unpublish takes the track away from its subscribers.
func (rt *RemoteTrack) Unpublish() { rt.once.Do(func() { rt.room.unpublish(rt.t) }) }

// SetMuted follows the publisher's mute.
func (rt *RemoteTrack) SetMuted(muted bool) {
	if rt.t.setMuted(muted) {
		rt.room.mutedChanged(rt.t)
	}
}

// Needed is the set of the track's layers this node's subscribers need
// now (bit i: layer i; 0: none): the lowest while anyone receives the
// track, so that a subscriber can fall back to it at once, and the layers
// their allocators forward or are switching to. A layer that does not
// arrive still is an option to the allocators, at its nominal rate; when
// one moves a subscriber up to it, it is asked for here and starts at a
// keyframe, as a layer that dynacast had switched off does.
func (rt *RemoteTrack) Needed() LayerSet {
	downs := rt.t.downTracks()
	if len(downs) == 0 {
		return 0
	}
	need := LayerSet(1)
	for _, d := range downs {
		d.mu.Lock()
		cur, target := d.current, d.target
		d.mu.Unlock()
		need = need.with(cur).with(target)
	}
	return need
}

// LayerSet is a set of a track's layers, bit i for layer i.
type LayerSet uint8

// Has says whether layer i is in s.
func (s LayerSet) Has(i int) bool { return i >= 0 && i < maxLayers && s&(1<<i) != 0 }

// Count is how many layers 0..n-1 cover s: what a publisher must encode.
func (s LayerSet) Count() int { return bits.Len8(uint8(s)) }

func (s LayerSet) with(i int) LayerSet {
	if i < 0 || i >= maxLayers {
		return s
	}
	return s | 1<<i
}

// Tap receives the packets of a local track, e.g. to relay them to
// another node. WritePacket is called on the forwarding loop, after the
// down-tracks, with the layer index, the parsed header (PaddingSize set)
// and the payload without padding; it must not block or keep them.
type Tap interface {
	WritePacket(layer int, h *rtp.Header, payload []byte)
	// Hold and Release bracket each pass of a forwarding loop, as the
	// down-tracks' batchers are: what the pass wrote may leave together.
	Hold()
	Release()
}

// LocalTrack is a track published on this node, as the cluster sees it.
type LocalTrack struct{ t *Track }

// LocalTrack finds a track published by a participant on this node.
func (rs *Rooms) LocalTrack(room, id string) (LocalTrack, bool) {
	r, err := rs.room(room)
	if err != nil {
		return LocalTrack{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tracks[id]
	if t == nil || r.participants[t.info.Participant] == nil {
		return LocalTrack{}, false
	}
	return LocalTrack{t}, true
}

// AddTap starts handing the track's packets to tap.
func (lt LocalTrack) AddTap(tap Tap) {
	t := lt.t
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.taps.Load()
	var taps []Tap
	if old != nil {
		taps = append(taps, *old...)
	}
	taps = append(taps, tap)
	t.taps.Store(&taps)
}

// RemoveTap stops handing packets to tap.
func (lt LocalTrack) RemoveTap(tap Tap) {
	t := lt.t
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.taps.Load()
	if old == nil {
		return
	}
	var taps []Tap
	for _, x := range *old {
		if x != tap {
			taps = append(taps, x)
		}
	}
	if len(taps) == 0 {
		t.taps.Store(nil)
		return
	}
	t.taps.Store(&taps)
}

// SetRemoteDemand records the layers another node's subscribers need
// (0: none), so that dynacast keeps them encoded.
func (lt LocalTrack) SetRemoteDemand(node string, layers LayerSet) {
	t := lt.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.remoteDemand == nil {
		t.remoteDemand = map[string]LayerSet{}
	}
	if layers == 0 {
		delete(t.remoteDemand, node)
	} else {
		t.remoteDemand[node] = layers
	}
}

// AudioLevelExt is the id of the audio level extension in the track's
// packets, 0 for none.
func (lt LocalTrack) AudioLevelExt() uint8 { return lt.t.levelExt }

// RequestKeyframe asks the publisher for a keyframe on a layer.
func (lt LocalTrack) RequestKeyframe(layer int) { lt.t.RequestKeyframe(layer) }

// Resend hands tap the cached packet seq of a layer again (a NACK from
// another node); false if it is no longer cached.
func (lt LocalTrack) Resend(layer int, seq uint16, tap Tap) bool {
	l := lt.t.layer(layer)
	if l == nil || l.cache == nil {
		return false
	}
	var buf [1500]byte
	n := l.cache.Get(seq, buf[:])
	if n <= 0 {
		return false
	}
	raw := buf[:n]
	var h rtp.Header
	hl, err := h.Unmarshal(raw)
	if err != nil {
		return false
	}
	media, pad, ok := stripPadding(&h, raw[hl:])
	if !ok {
		return false
	}
	h.PaddingSize = pad
	tap.WritePacket(layer, &h, media)
	return true
}

// remoteDemandLocked is how many layers (0..n-1) the publisher must
// encode for other nodes; t.mu held.
func (t *Track) remoteDemandLocked() int {
	n := 0
	for _, v := range t.remoteDemand {
		n = max(n, v.Count())
	}
	return n
}
