package cluster

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/sfu"
	"github.com/switchboard-sfu/switchboard/trunk"
)

// The bridge carries rooms across nodes. Inbound, it shows each room open
// here the participants the room has on other nodes (from their rosters),
// with their tracks read from the trunk, and tells each track's node which
// layers this node's subscribers need (the demand: the lowest, and those
// their allocators forward or switch to; none when nobody receives it).
// Outbound, it sends each local track, once per node that demands it, and
// only the layers demanded, over that node's trunk flow; it answers the
// trunk's NACKs from the track's cache and passes keyframe requests to the
// publisher through the track's throttle.

// Timing of demand: recomputed every demandTick, sent when it changes and
// at least every demandRefresh; an origin forgets demand not renewed
// within demandTTL (the demanding node went away without saying so).
const (
	demandTick    = 250 * time.Millisecond
	demandRefresh = 2 * time.Second
	demandTTL     = 6 * time.Second
)

type bridge struct {
	n     *Node
	ep    *trunk.Endpoint
	rooms *sfu.Rooms
	log   *zap.Logger

	// Outbound, shared with NATS's and the trunk's callbacks.
	mu     sync.Mutex
	bases  map[string]uint32     // local track id -> trunk SSRC base (+ layer index)
	byBase map[uint32]localRef   // the reverse
	outs   map[outKey]*relayOut  // what each node is sent
	peers  map[string]leaseTrunk // the trunk address and key each peer was connected with
	dirty  map[string]bool       // rooms to reconcile
	wake   chan struct{}
	ins    map[string]*roomIn // inbound; run's goroutine only
}

type localRef struct{ room, track string }

type outKey struct{ node, track string }

type leaseTrunk struct {
	addr string
	key  string
}

// relayOut sends one local track's demanded layers to one node.
type relayOut struct {
	peer   *trunk.Peer
	base   uint32
	track  sfu.LocalTrack
	layers atomic.Uint32 // sfu.LayerSet
	seen   time.Time     // the last demand; b.mu
}

// Hold and Release implement sfu.Tap: a pass's packets leave together.
func (o *relayOut) Hold()    { o.peer.Hold() }
func (o *relayOut) Release() { o.peer.Release() }

// WritePacket implements sfu.Tap, on the track's forwarding loop.
func (o *relayOut) WritePacket(layer int, h *rtp.Header, payload []byte) {
	if sfu.LayerSet(o.layers.Load()).Has(layer) {
		_ = o.peer.WriteRTP(o.base+uint32(layer), h, payload)
	}
}

// roomIn is what a room here shows of other nodes.
type roomIn struct {
	participants map[string]string // remote participant id -> node
	tracks       map[string]*trackIn
}

type trackIn struct {
	node    string
	room    string
	id      string
	owner   string // the remote participant
	rt      *sfu.RemoteTrack
	streams []*trunk.Stream
	rids    []string
	muted   bool
	demand  sfu.LayerSet
	sentAt  time.Time
}

// demandMsg travels over NATS to the node of a track.
type demandMsg struct {
	From   string       `json:"from"`
	Room   string       `json:"room"`
	Track  string       `json:"track"`
	Layers sfu.LayerSet `json:"layers"` // bit i: layer i
}

func demandSubject(node string) string { return "switchboard.demand." + key(node) }

func newBridge(n *Node, ep *trunk.Endpoint) *bridge {
	b := &bridge{n: n, ep: ep, rooms: n.rooms, log: n.log.Named("bridge"),
		bases: map[string]uint32{}, byBase: map[uint32]localRef{}, outs: map[outKey]*relayOut{},
		peers: map[string]leaseTrunk{}, dirty: map[string]bool{}, wake: make(chan struct{}, 1),
		ins: map[string]*roomIn{}}
	ep.OnKeyframeRequest(b.keyframeRequest)
	ep.OnNACK(b.nack)
	return b
}

// base is the trunk SSRC base of a local track, made on first use: random,
// with room for a layer index in the low two bits.
func (b *bridge) base(room, track string) uint32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.bases[track]; ok {
		return s
	}
	for {
		s := rand.Uint32() &^ 3
		if _, taken := b.byBase[s]; !taken && s != 0 {
			b.bases[track] = s
			b.byBase[s] = localRef{room, track}
			return s
		}
	}
}

// forgetTrack drops what the bridge keeps of a local track that ended.
func (b *bridge) forgetTrack(track string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.bases[track]; ok {
		delete(b.byBase, s)
		delete(b.bases, track)
	}
	for k, o := range b.outs {
		if k.track == track {
			b.stopLocked(k, o)
		}
	}
}

// connectPeer keeps the trunk flow to a node current with its lease.
func (b *bridge) connectPeer(l Lease) {
	if l.Trunk == "" || len(l.TrunkKey) == 0 || l.ID == b.n.cfg.NodeID {
		return
	}
	want := leaseTrunk{addr: l.Trunk, key: string(l.TrunkKey)}
	b.mu.Lock()
	same := b.peers[l.ID] == want
	b.mu.Unlock()
	if same {
		return
	}
	addr, err := net.ResolveUDPAddr("udp", l.Trunk)
	if err != nil {
		b.log.Warn("bad trunk address in a lease", zap.String("node", l.ID), zap.String("trunk", l.Trunk), zap.Error(err))
		return
	}
	if _, err := b.ep.Connect(l.ID, addr, l.TrunkKey); err != nil {
		b.log.Warn("trunk connect", zap.String("node", l.ID), zap.Error(err))
		return
	}
	b.mu.Lock()
	b.peers[l.ID] = want
	b.mu.Unlock()
	b.log.Info("trunk to node", zap.String("node", l.ID), zap.String("addr", l.Trunk))
	b.markAll()
}

// nodeGone ends everything shared with a node whose lease lapsed.
func (b *bridge) nodeGone(node string) {
	b.mu.Lock()
	for k, o := range b.outs {
		if k.node == node {
			b.stopLocked(k, o)
		}
	}
	delete(b.peers, node)
	b.mu.Unlock()
	b.ep.Disconnect(node)
	b.markAll()
}

// demanded handles a node's demand for one of this node's tracks.
func (b *bridge) demanded(m demandMsg) {
	k := outKey{node: m.From, track: m.Track}
	// Found before b.mu is taken: the rooms' locks come first (Observe is
	// called under a room's lock and takes b.mu).
	lt, isLocal := b.rooms.LocalTrack(m.Room, m.Track)
	var keyframes []int
	var relayed sfu.LocalTrack
	defer func() {
		// After b.mu: a keyframe request may write to the publisher.
		for _, l := range keyframes {
			relayed.RequestKeyframe(l)
		}
	}()
	b.mu.Lock()
	defer b.mu.Unlock()
	o := b.outs[k]
	if m.Layers == 0 {
		if o != nil {
			b.stopLocked(k, o)
		}
		return
	}
	if o == nil {
		base, known := b.bases[m.Track]
		peer := b.ep.Peer(m.From)
		if !isLocal || !known || peer == nil {
			return // gone, never announced, or no flow yet: the next demand retries
		}
		o = &relayOut{peer: peer, base: base, track: lt}
		b.outs[k] = o
		lt.AddTap(o)
		b.log.Debug("relaying a track", zap.String("node", m.From), zap.String("track", m.Track), zap.Uint8("layers", uint8(m.Layers)))
	}
	// The new layers start at a keyframe for the far side's subscribers.
	relayed = o.track
	added := m.Layers &^ sfu.LayerSet(o.layers.Swap(uint32(m.Layers)))
	for l := 0; added>>l != 0; l++ {
		if added.Has(l) {
			keyframes = append(keyframes, l)
		}
	}
	o.seen = time.Now()
	o.track.SetRemoteDemand(m.From, m.Layers)
}

// stopLocked stops relaying a track to a node; b.mu held.
func (b *bridge) stopLocked(k outKey, o *relayOut) {
	o.track.RemoveTap(o)
	o.track.SetRemoteDemand(k.node, 0)
	delete(b.outs, k)
}

// expireDemand forgets demand that was not renewed.
func (b *bridge) expireDemand(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, o := range b.outs {
		if now.Sub(o.seen) > demandTTL {
			b.stopLocked(k, o)
		}
	}
}

func (b *bridge) local(ssrc uint32) (sfu.LocalTrack, int, bool) {
	b.mu.Lock()
	ref, ok := b.byBase[ssrc&^3]
	b.mu.Unlock()
	if !ok {
		return sfu.LocalTrack{}, 0, false
	}
	lt, ok := b.rooms.LocalTrack(ref.room, ref.track)
	return lt, int(ssrc & 3), ok
}

func (b *bridge) keyframeRequest(_ string, ssrc uint32) {
	if lt, layer, ok := b.local(ssrc); ok {
		lt.RequestKeyframe(layer)
	}
}

// nack answers a node's NACKs from the cache of the track it relays to it.
func (b *bridge) nack(node string, ssrc uint32, seqs []uint16) {
	b.mu.Lock()
	o := b.outs[outKey{node: node, track: b.byBase[ssrc&^3].track}]
	b.mu.Unlock()
	if o == nil {
		return // not relayed to it (any more)
	}
	for _, seq := range seqs {
		o.track.Resend(int(ssrc&3), seq, o)
	}
}

// mark asks for room to be reconciled.
func (b *bridge) mark(room string) {
	b.mu.Lock()
	b.dirty[room] = true
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *bridge) markAll() {
	b.n.mu.Lock()
	var rooms []string
	for room := range b.n.view.rooms {
		rooms = append(rooms, room)
	}
	b.n.mu.Unlock()
	for _, r := range b.rooms.List() {
		rooms = append(rooms, r.Name)
	}
	for _, r := range rooms {
		b.mark(r)
	}
}

// run reconciles rooms and sends demand until done closes.
func (b *bridge) run(done <-chan struct{}) {
	tick := time.NewTicker(demandTick)
	defer tick.Stop()
	for {
		select {
		case <-done:
			for room := range b.ins {
				b.clear(room)
			}
			return
		case <-b.wake:
			b.mu.Lock()
			dirty := b.dirty
			b.dirty = map[string]bool{}
			b.mu.Unlock()
			for room := range dirty {
				b.reconcile(room)
			}
		case now := <-tick.C:
			b.sendDemand(now)
			b.expireDemand(now)
		}
	}
}

// reconcile makes room here show what the other nodes' rosters say.
func (b *bridge) reconcile(room string) {
	if _, err := b.rooms.Room(room); err != nil {
		b.clear(room) // nobody here to show them to
		return
	}
	b.n.mu.Lock()
	rosters := b.n.view.remote(room, time.Now())
	b.n.mu.Unlock()
	in := b.ins[room]
	if in == nil {
		in = &roomIn{participants: map[string]string{}, tracks: map[string]*trackIn{}}
		b.ins[room] = in
	}
	want := map[string]string{}
	wantTracks := map[string]bool{}
	for _, r := range rosters {
		for _, p := range r.Participants {
			want[p.ID] = r.Node
			for _, t := range p.Tracks {
				wantTracks[t.ID] = true
			}
		}
	}
	for id, ti := range in.tracks {
		if !wantTracks[id] || want[ti.owner] != ti.node {
			b.drop(ti)
			delete(in.tracks, id)
		}
	}
	for id := range in.participants {
		if _, ok := want[id]; !ok {
			b.rooms.RemoveRemote(room, id)
			delete(in.participants, id)
		}
	}
	for _, r := range rosters {
		for _, p := range r.Participants {
			if err := b.rooms.AddRemote(room, sfu.ParticipantInfo{ID: p.ID, Name: p.Name, Reconnecting: p.Reconnecting}); err != nil {
				if err == sfu.ErrNoLocalRoom {
					b.clear(room)
					return
				}
				continue // a participant id clash: leave it out
			}
			in.participants[p.ID] = r.Node
			for _, t := range p.Tracks {
				b.track(in, room, r.Node, p.ID, t)
			}
		}
	}
}

// track publishes, or updates, one remote track in room.
func (b *bridge) track(in *roomIn, room, node, owner string, t Track) {
	rids := t.Layers
	if len(rids) == 0 {
		rids = []string{""}
	}
	if ti := in.tracks[t.ID]; ti != nil {
		if ti.muted != t.Muted {
			ti.muted = t.Muted
			ti.rt.SetMuted(t.Muted)
		}
		if len(rids) > len(ti.rids) {
			// Layers that arrived since: published again with all of them.
			b.drop(ti)
			delete(in.tracks, t.ID)
		} else {
			return
		}
	}
	peer := b.ep.Peer(node)
	if peer == nil || t.SSRC == 0 {
		return // no flow to that node yet; its lease brings one and a new try
	}
	ti := &trackIn{node: node, room: room, id: t.ID, owner: owner, rids: rids, muted: t.Muted}
	var sources []sfu.LayerSource
	for i, rid := range rids {
		s := peer.Stream(t.SSRC+uint32(layerOf(rid, i)), rid)
		ti.streams = append(ti.streams, s)
		sources = append(sources, s)
	}
	kind := webrtc.NewRTPCodecType(t.Kind)
	rt, err := b.rooms.PublishRemote(room, sfu.TrackInfo{ID: t.ID, Participant: owner, Kind: kind, Codec: t.Codec,
		Source: t.Source, Muted: t.Muted}, sources, t.LevelExt, func(ssrc uint32) { _ = peer.RequestKeyframe(ssrc) })
	if err != nil {
		for _, s := range ti.streams {
			_ = s.Close()
		}
		b.log.Debug("remote track not published", zap.String("track", t.ID), zap.Error(err))
		return
	}
	ti.rt = rt
	in.tracks[t.ID] = ti
}

// layerOf is the layer index of a rid at position i of a roster's layers,
// as the origin's sfu placed it: the web client's rids by name, others in
// order (the roster lists them by index).
func layerOf(rid string, i int) int {
	if l, ok := sfu.RIDLayer(rid); ok {
		return l
	}
	return i
}

// drop unpublishes a remote track and tells its node it is not needed.
func (b *bridge) drop(ti *trackIn) {
	if ti.rt != nil {
		ti.rt.Unpublish()
	}
	for _, s := range ti.streams {
		_ = s.Close()
	}
	if ti.demand > 0 {
		ti.demand = 0
		b.publishDemand(ti)
	}
}

// clear takes everything of other nodes out of room.
func (b *bridge) clear(room string) {
	in := b.ins[room]
	if in == nil {
		return
	}
	for _, ti := range in.tracks {
		b.drop(ti)
	}
	for id := range in.participants {
		b.rooms.RemoveRemote(room, id)
	}
	delete(b.ins, room)
}

// sendDemand tells each remote track's node what this node needs of it.
func (b *bridge) sendDemand(now time.Time) {
	for _, in := range b.ins {
		for _, ti := range in.tracks {
			need := ti.rt.Needed()
			if need == ti.demand && (need == 0 || now.Sub(ti.sentAt) < demandRefresh) {
				continue
			}
			ti.demand, ti.sentAt = need, now
			b.publishDemand(ti)
		}
	}
}

func (b *bridge) publishDemand(ti *trackIn) {
	msg, err := json.Marshal(demandMsg{From: b.n.cfg.NodeID, Room: ti.room, Track: ti.id, Layers: ti.demand})
	if err != nil {
		return
	}
	if err := b.n.publish(demandSubject(ti.node), msg); err != nil {
		b.log.Debug("demand not sent", zap.String("node", ti.node), zap.Error(err))
	}
}

// relayStreams counts the streams (track layers) sent to each node.
func (b *bridge) relayStreams() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for k, o := range b.outs {
		out[k.node] += bits.OnesCount32(o.layers.Load())
	}
	return out
}

// trunkAddress is host:port for the lease: relay-address, else the
// advertise URL's host when it is an IP address, else the first global
// IPv4 address of the machine.
func trunkAddress(cfg Config, port int) string {
	host := cfg.RelayAddress
	if host == "" {
		host = urlHost(cfg.URL)
		if net.ParseIP(host) == nil {
			host = firstGlobalIPv4()
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func firstGlobalIPv4() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "127.0.0.1"
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
			return ipn.IP.String()
		}
	}
	return "127.0.0.1"
}

func urlHost(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Hostname()
}

// Room data (chat and app messages), moderation of a participant on
// another node, and the end of a room cross over NATS on a subject per
// room: every node with the room open applies what it gets there (data to
// its recipients here, moderation to its target if here). Files are not
// relayed (a file is offered to the participants of the sender's node).
const (
	dataSubject       = "switchboard.data"
	moderationSubject = "switchboard.moderate"
)

// roomMsg is what travels on a room's subject.
type roomMsg[T any] struct {
	From string `json:"from"`
	Body T      `json:"body"`
}

// toRoom publishes body on subject for room's other nodes.
func (b *bridge) toRoom(subject, room string, body any) {
	msg, err := json.Marshal(roomMsg[any]{From: b.n.cfg.NodeID, Body: body})
	if err == nil {
		err = b.n.publish(subject+"."+key(room), msg)
	}
	if err != nil {
		b.log.Warn("not passed on to the room's other nodes", zap.String("subject", subject), zap.String("room", room), zap.Error(err))
	}
}

// fromRooms handles what other nodes publish on subject's rooms.
func fromRooms[T any](b *bridge, subject string, apply func(room string, body T)) nats.MsgHandler {
	return func(msg *nats.Msg) {
		var m roomMsg[T]
		if json.Unmarshal(msg.Data, &m) != nil || m.From == b.n.cfg.NodeID {
			return
		}
		if room, err := unkey(strings.TrimPrefix(msg.Subject, subject+".")); err == nil {
			apply(room, m.Body)
		}
	}
}

func (b *bridge) dataOut(room string, m sfu.RoomData) { b.toRoom(dataSubject, room, m) }
func (b *bridge) moderationOut(room string, m sfu.RemoteModeration) {
	b.toRoom(moderationSubject, room, m)
}

// subscribeRooms takes the other nodes' room data and moderation.
func (b *bridge) subscribeRooms(nc *nats.Conn) error {
	if _, err := nc.Subscribe(dataSubject+".*", fromRooms(b, dataSubject, b.rooms.DeliverData)); err != nil {
		return fmt.Errorf("cluster: subscribe to room data: %w", err)
	}
	if _, err := nc.Subscribe(moderationSubject+".*", fromRooms(b, moderationSubject, b.rooms.Moderate)); err != nil {
		return fmt.Errorf("cluster: subscribe to moderation: %w", err)
	}
	return nil
}
