// Package cluster makes Switchboard servers one service over NATS. Each
// node keeps a lease in a JetStream key-value bucket (its URL, state and
// load, renewed every 2 s, gone after 6 s of silence) and its part of every
// room it hosts (who is there, what they publish). From these every node
// sees the whole cluster and places joins: a room stays on the node it is
// on while it fits, a join that reached another node is redirected there,
// and a new room goes to the less loaded of two random serving nodes.
//
// No node owns anything: a node that dies takes only its own participants
// with it; their clients reconnect, and placement sends them elsewhere. A
// lost NATS connection leaves local calls alone: the node keeps serving,
// freezes its picture of the others, and publishes itself again when NATS
// returns.
//
// Without a cluster setting the node runs on an embedded, in-process NATS
// server that opens no port, so a single server needs nothing else.
package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/sfu"
	"github.com/switchboard-sfu/switchboard/trunk"
)

// Config is a node's cluster settings.
type Config struct {
	// NATS lists the servers of the cluster's NATS (nats:// or tls://
	// URLs); empty runs an embedded server that opens no port.
	NATS []string
	// NodeID names the node; unique in the cluster.
	NodeID string
	// URL is where clients reach this node (redirects point there).
	URL string
	// Credentials is a NATS credentials file; CAFile, CertFile and KeyFile
	// set up TLS to NATS (a CA to trust, a client certificate).
	Credentials               string
	CAFile, CertFile, KeyFile string
	// Replicas of the registry's buckets in a NATS cluster (1 to 5).
	Replicas int
	// MaxParticipantsPerNodeRoom is how many participants of one room a
	// node takes before the room spreads to another (0: no cap).
	MaxParticipantsPerNodeRoom int
	// MaxRooms is limits.rooms: placement opens no new room on a node
	// that has this many (0: no limit).
	MaxRooms int
	// RelayPort is the UDP port of the trunk, the media flow between nodes
	// (0: any); RelayAddress the address other nodes reach it at (default:
	// the advertise URL's host if it is an IP address, else the machine's
	// first global IPv4 address). Only with NATS: a lone node relays nothing.
	RelayPort    int
	RelayAddress string
}

// Bucket names: the leases, the rosters, and the claims on new rooms.
const (
	bucketNodes  = "switchboard_nodes"
	bucketRooms  = "switchboard_rooms"
	bucketClaims = "switchboard_claims"
	// A claim lives until the room's roster is published, which follows
	// the first join by well under a second.
	claimTTL = 10 * time.Second
	// rosterDelay gathers a burst of changes (a participant joining with
	// two tracks) into one write after the first.
	rosterDelay = 20 * time.Millisecond
	opTimeout   = 2 * time.Second
	firstSetup  = 3 * time.Second
)

// Node is this server's membership of the cluster.
type Node struct {
	cfg   Config
	rooms *sfu.Rooms
	log   *zap.Logger

	embedded *server.Server
	storeDir string
	nc       *nats.Conn
	trunkEP  *trunk.Endpoint // nil without NATS
	bridge   *bridge         // nil without NATS

	mu      sync.Mutex
	view    *view
	state   string
	kv      *buckets // nil until the registry is set up
	dirty   map[string]bool
	meter   loadMeter
	lastErr string
	// trunkAddr is what the lease says other nodes reach the trunk at.
	trunkAddr string

	ready  chan struct{} // closed by the first setup
	wake   chan struct{} // rosters to write
	resync chan struct{} // NATS came back: set up again
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	stats stats
}

type buckets struct {
	nodes, rooms, claims jetstream.KeyValue
	stop                 context.CancelFunc // ends the watchers
}

type stats struct {
	registryErrors atomic.Uint64
	redirects      atomic.Uint64
	connected      atomic.Bool
}

// Start joins the cluster, or starts the embedded one, in the background:
// the server serves at once and places every join here until the registry
// is set up. With cluster.nats, Start waits up to firstSetup for it, so that
// a node that starts into a running cluster places its first joins knowing
// the others. It fails only on a bad setting.
func Start(cfg Config, rooms *sfu.Rooms, log *zap.Logger) (*Node, error) {
	if cfg.NodeID == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("cluster.node-id: %w", err)
		}
		cfg.NodeID = host
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	n := &Node{cfg: cfg, rooms: rooms, log: log, view: newView(cfg.NodeID), state: Serving,
		dirty: map[string]bool{}, wake: make(chan struct{}, 1), resync: make(chan struct{}, 1),
		ready: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if len(cfg.NATS) > 0 {
		ep, err := trunk.Listen(cfg.NodeID, net.JoinHostPort("", strconv.Itoa(cfg.RelayPort)), log.Named("trunk"))
		if err != nil {
			return nil, fmt.Errorf("cluster.relay-port: %w", err)
		}
		n.trunkEP = ep
		n.trunkAddr = trunkAddress(cfg, ep.Addr().Port)
		n.bridge = newBridge(n, ep)
		rooms.SetDataBridge(n.bridge.dataOut)
		rooms.SetModerationBridge(n.bridge.moderationOut)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.bridge.run(n.ctx.Done())
		}()
	}
	n.view.setLease(n.leaseLocked(), time.Now())
	n.wg.Add(1)
	go n.run()
	if len(cfg.NATS) > 0 {
		select {
		case <-n.ready:
		case <-time.After(firstSetup):
			log.Warn("cluster: NATS not reachable yet; serving alone until it is", zap.Strings("nats", cfg.NATS))
		}
	}
	return n, nil
}

// connect starts the embedded server or dials the configured ones.
func (n *Node) connect() error {
	opts := []nats.Option{
		nats.Name("switchboard " + n.cfg.NodeID),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.stats.connected.Store(false)
			n.mu.Lock()
			n.view.frozen = true
			n.mu.Unlock()
			if n.ctx.Err() != nil {
				return // Close closed it
			}
			n.log.Warn("cluster: NATS connection lost; local calls go on", zap.Error(err))
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			n.log.Info("cluster: NATS connection back")
			select {
			case n.resync <- struct{}{}:
			default:
			}
		}),
	}
	var urls string
	if len(n.cfg.NATS) == 0 {
		dir, err := os.MkdirTemp("", "switchboard-nats-")
		if err != nil {
			return err
		}
		n.storeDir = dir
		ns, err := server.NewServer(&server.Options{ServerName: n.cfg.NodeID, DontListen: true, JetStream: true,
			StoreDir: dir, NoSigs: true, NoLog: true, JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 64 << 20})
		if err != nil {
			return fmt.Errorf("embedded NATS: %w", err)
		}
		go ns.Start()
		n.embedded = ns
		if !ns.ReadyForConnections(5 * time.Second) {
			return errors.New("embedded NATS did not start")
		}
		opts = append(opts, nats.InProcessServer(ns))
	} else {
		urls = strings.Join(n.cfg.NATS, ",")
		if n.cfg.Credentials != "" {
			opts = append(opts, nats.UserCredentials(n.cfg.Credentials))
		}
		if n.cfg.CAFile != "" {
			opts = append(opts, nats.RootCAs(n.cfg.CAFile))
		}
		if n.cfg.CertFile != "" {
			opts = append(opts, nats.ClientCert(n.cfg.CertFile, n.cfg.KeyFile))
		}
	}
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return fmt.Errorf("cluster.nats: %w", err)
	}
	n.mu.Lock()
	n.nc = nc
	n.mu.Unlock()
	if n.bridge != nil {
		// Core NATS subscriptions outlive reconnections by themselves.
		if _, err := nc.Subscribe(demandSubject(n.cfg.NodeID), func(m *nats.Msg) {
			var d demandMsg
			if json.Unmarshal(m.Data, &d) == nil && d.From != "" && d.From != n.cfg.NodeID {
				n.bridge.demanded(d)
			}
		}); err != nil {
			return fmt.Errorf("cluster: subscribe to demand: %w", err)
		}
		if err := n.bridge.subscribeRooms(nc); err != nil {
			return err
		}
	}
	return nil
}

// setup creates the buckets if needed, starts watching them, and writes
// the node's lease and rosters: at start and each time NATS comes back
// (a restarted NATS may have lost everything).
func (n *Node) setup(ctx context.Context) error {
	js, err := jetstream.New(n.nc)
	if err != nil {
		return err
	}
	bucket := func(name string, ttl time.Duration) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, TTL: ttl, History: 1,
			Storage: jetstream.MemoryStorage, Replicas: n.cfg.Replicas})
	}
	b := &buckets{}
	if b.nodes, err = bucket(bucketNodes, leaseTTL); err != nil {
		return err
	}
	if b.rooms, err = bucket(bucketRooms, 0); err != nil {
		return err
	}
	if b.claims, err = bucket(bucketClaims, claimTTL); err != nil {
		return err
	}
	wctx, stop := context.WithCancel(n.ctx)
	b.stop = stop
	nodesW, err := b.nodes.WatchAll(wctx)
	if err != nil {
		stop()
		return err
	}
	roomsW, err := b.rooms.WatchAll(wctx)
	if err != nil {
		stop()
		return err
	}
	// The watchers deliver what is there, then nil: wait for both, so that
	// the first placement sees the cluster as it is.
	ready := make(chan struct{}, 2)
	n.wg.Add(2)
	go n.watch(nodesW, ready, n.applyLease)
	go n.watch(roomsW, ready, n.applyRoster)
	for range 2 {
		select {
		case <-ready:
		case <-ctx.Done():
			stop()
			return ctx.Err()
		}
	}
	n.mu.Lock()
	if old := n.kv; old != nil {
		old.stop()
	}
	n.kv = b
	n.view.frozen = false
	// Rosters of this node from before a restart, and every room it has
	// now, are written again.
	for room, nodes := range n.view.rooms {
		if _, ok := nodes[n.cfg.NodeID]; ok {
			n.dirty[room] = true
		}
	}
	for _, r := range n.rooms.List() {
		n.dirty[r.Name] = true
	}
	n.mu.Unlock()
	n.stats.connected.Store(true)
	if err := n.putLease(ctx); err != nil {
		return err
	}
	n.writeRosters(ctx)
	return nil
}

// watch applies a watcher's updates to the view until it ends.
func (n *Node) watch(w jetstream.KeyWatcher, ready chan<- struct{}, apply func(jetstream.KeyValueEntry, time.Time)) {
	defer n.wg.Done()
	defer func() { _ = w.Stop() }()
	for e := range w.Updates() {
		if e == nil {
			select {
			case ready <- struct{}{}:
			default:
			}
			continue
		}
		apply(e, time.Now())
	}
}

func (n *Node) applyLease(e jetstream.KeyValueEntry, now time.Time) {
	if e.Operation() != jetstream.KeyValuePut {
		id, err := unkey(e.Key())
		if err == nil && id != n.cfg.NodeID {
			n.mu.Lock()
			delete(n.view.nodes, id)
			n.mu.Unlock()
			n.gone([]string{id})
		}
		return
	}
	var l Lease
	if err := json.Unmarshal(e.Value(), &l); err != nil || l.ID == "" {
		n.log.Warn("cluster: bad lease in the registry", zap.String("key", e.Key()), zap.Error(err))
		return
	}
	if l.ID == n.cfg.NodeID {
		return // our own, which we know better
	}
	n.mu.Lock()
	_, known := n.view.nodes[l.ID]
	n.view.setLease(l, now)
	n.mu.Unlock()
	if n.bridge != nil {
		n.bridge.connectPeer(l)
	}
	if !known {
		n.log.Info("cluster: node up", zap.String("node", l.ID), zap.String("url", l.URL), zap.String("state", l.State))
	}
}

func (n *Node) applyRoster(e jetstream.KeyValueEntry, _ time.Time) {
	room, node, err := unroomKey(e.Key())
	if err != nil {
		return
	}
	if node == n.cfg.NodeID {
		return // what we wrote; the rooms themselves are the truth
	}
	var r Roster
	if e.Operation() == jetstream.KeyValuePut {
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			n.log.Warn("cluster: bad roster in the registry", zap.String("key", e.Key()), zap.Error(err))
			return
		}
	}
	r.Room, r.Node = room, node
	n.mu.Lock()
	n.view.setRoster(r)
	n.mu.Unlock()
	if n.bridge != nil {
		n.bridge.mark(room)
	}
}

// run renews the lease, writes rosters, expires lapsed nodes and sets the
// registry up again after NATS returns, until Close.
func (n *Node) run() {
	defer n.wg.Done()
	if err := n.connect(); err != nil {
		n.registryError("connect", err)
		n.log.Error("cluster: no registry; this node serves alone", zap.Error(err))
		close(n.ready) // ready as it will ever be: alone
		<-n.ctx.Done()
		return
	}
	retry := n.trySetup()
	renew := time.NewTicker(leaseRefresh)
	defer renew.Stop()
	sweep := time.NewTicker(250 * time.Millisecond)
	defer sweep.Stop()
	renewC, sweepC := renew.C, sweep.C
	if n.alone() {
		// Nobody else reads the embedded registry: a single node spends
		// nothing on it once it is set up.
		renew.Stop()
		sweep.Stop()
		renewC, sweepC = nil, nil
	}
	var flush <-chan time.Time
	var lastWrite time.Time
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-renewC:
			ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
			n.refreshLoad()
			if err := n.putLease(ctx); err != nil {
				n.registryError("renew lease", err)
			} else {
				n.writeRosters(ctx) // any that failed before
			}
			cancel()
		case <-n.wake:
			// The first change goes out at once (other nodes place joins
			// on it); a burst after it is gathered into one write.
			if flush == nil {
				flush = time.After(max(0, rosterDelay-time.Since(lastWrite)))
			}
		case <-flush:
			flush = nil
			lastWrite = time.Now()
			ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
			n.writeRosters(ctx)
			cancel()
		case <-sweepC:
			n.mu.Lock()
			gone := n.view.expire(time.Now())
			n.mu.Unlock()
			n.gone(gone)
			n.forgetRosters(gone)
		case <-n.resync:
			retry = n.trySetup()
		case <-retry:
			retry = n.trySetup()
		}
	}
}

func (n *Node) trySetup() <-chan time.Time {
	if !n.nc.IsConnected() {
		return time.After(time.Second) // the reconnect handler will call again
	}
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	if err := n.setup(ctx); err != nil {
		n.registryError("set up the registry", err)
		return time.After(time.Second)
	}
	select {
	case <-n.ready:
		n.log.Info("cluster: registry set up again")
	default:
		close(n.ready)
		n.log.Info("cluster: registry set up", zap.String("node", n.cfg.NodeID), zap.Bool("embedded", n.embedded != nil))
	}
	return nil
}

// gone ends what this node shares with nodes whose leases lapsed.
func (n *Node) gone(ids []string) {
	for _, id := range ids {
		n.log.Warn("cluster: node gone", zap.String("node", id))
		if n.bridge != nil {
			n.bridge.nodeGone(id)
		}
	}
}

// forgetRosters deletes the rosters of lapsed nodes from the registry, so
// that they do not linger there; every node may do it, and repeats are harmless.
func (n *Node) forgetRosters(ids []string) {
	if len(ids) == 0 {
		return
	}
	kv := n.buckets()
	if kv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	lister, err := kv.rooms.ListKeys(ctx)
	if err != nil {
		n.registryError("list rosters", err)
		return
	}
	for k := range lister.Keys() {
		if _, node, err := unroomKey(k); err == nil && slices.Contains(ids, node) {
			_ = kv.rooms.Delete(ctx, k)
		}
	}
}

func (n *Node) buckets() *buckets {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.kv
}

func (n *Node) registryError(what string, err error) {
	n.stats.registryErrors.Add(1)
	n.mu.Lock()
	repeat := n.lastErr == what
	n.lastErr = what
	n.mu.Unlock()
	if !repeat {
		n.log.Warn("cluster: registry", zap.String("op", what), zap.Error(err))
	}
}

// leaseLocked is the node's lease as it stands.
func (n *Node) leaseLocked() Lease {
	l := Lease{ID: n.cfg.NodeID, URL: n.cfg.URL, State: n.state, Load: n.meter.load, MaxRooms: n.cfg.MaxRooms}
	if n.trunkEP != nil {
		l.Trunk, l.TrunkKey = n.trunkAddr, n.trunkEP.PublicKey()
	}
	return l
}

// publish sends a core NATS message (demand), when connected.
func (n *Node) publish(subject string, data []byte) error {
	n.mu.Lock()
	nc := n.nc
	n.mu.Unlock()
	if nc == nil {
		return errors.New("no NATS connection")
	}
	return nc.Publish(subject, data)
}

func (n *Node) putLease(ctx context.Context) error {
	n.mu.Lock()
	l := n.leaseLocked()
	n.view.setLease(l, time.Now())
	kv := n.kv
	n.mu.Unlock()
	if kv == nil {
		return errors.New("no registry")
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	_, err = kv.nodes.Put(ctx, key(n.cfg.NodeID), b)
	if err == nil {
		n.mu.Lock()
		n.lastErr = ""
		n.mu.Unlock()
	}
	return err
}

// refreshLoad measures the node's load for its next lease.
func (n *Node) refreshLoad() {
	rooms := n.rooms.List()
	var l Load
	l.Rooms = len(rooms)
	for _, r := range rooms {
		l.Participants += len(r.Participants)
		for _, p := range r.Participants {
			l.Tracks += len(p.Tracks)
		}
	}
	in, out := n.rooms.Traffic()
	n.mu.Lock()
	l.CPU, l.BitrateIn, l.BitrateOut = n.meter.sample(time.Now(), in, out)
	n.meter.load = l
	n.mu.Unlock()
}

// Observe takes the rooms' events (sfu.Rooms.SetObserver): each change of
// a room rewrites this node's roster of it.
func (n *Node) Observe(e sfu.Event) {
	if e.Type == sfu.RoomStarted || n.alone() {
		return // empty until its first participant; or nobody to tell
	}
	n.mu.Lock()
	n.dirty[e.Room] = true
	n.mu.Unlock()
	if n.bridge != nil {
		if e.Type == sfu.TrackUnpublished && e.Track != nil {
			n.bridge.forgetTrack(e.Track.ID)
		}
		n.bridge.mark(e.Room)
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// writeRosters writes the rosters of the rooms that changed.
func (n *Node) writeRosters(ctx context.Context) {
	n.mu.Lock()
	dirty := n.dirty
	n.dirty = map[string]bool{}
	kv := n.kv
	n.mu.Unlock()
	if kv == nil {
		n.requeue(dirty)
		return
	}
	failed := map[string]bool{}
	for room := range dirty {
		r := n.roster(room)
		var err error
		if len(r.Participants) == 0 {
			err = kv.rooms.Delete(ctx, roomKey(room, n.cfg.NodeID))
		} else {
			var b []byte
			if b, err = json.Marshal(r); err == nil {
				_, err = kv.rooms.Put(ctx, roomKey(room, n.cfg.NodeID), b)
			}
		}
		if err != nil {
			failed[room] = true
			n.registryError("write roster", err)
		}
	}
	n.requeue(failed)
}

// requeue keeps rosters that could not be written for the next try (the
// lease renewal, or NATS's return, writes them).
func (n *Node) requeue(rooms map[string]bool) {
	if len(rooms) == 0 {
		return
	}
	n.mu.Lock()
	for r := range rooms {
		n.dirty[r] = true
	}
	n.mu.Unlock()
}

// roster is this node's part of room as it is now.
func (n *Node) roster(room string) Roster {
	r := Roster{Room: room, Node: n.cfg.NodeID}
	info, err := n.rooms.Room(room)
	if err != nil {
		return r
	}
	for _, p := range info.Participants {
		rp := Participant{ID: p.ID, Name: p.Name, Reconnecting: p.Reconnecting}
		for _, t := range p.Tracks {
			rt := Track{ID: t.ID, Kind: t.Kind.String(), Codec: t.Codec, Source: t.Source, Layers: t.Layers, Muted: t.Muted}
			if n.bridge != nil {
				rt.SSRC = n.bridge.base(room, t.ID)
				if lt, ok := n.rooms.LocalTrack(room, t.ID); ok {
					rt.LevelExt = lt.AudioLevelExt()
				}
			}
			rp.Tracks = append(rp.Tracks, rt)
		}
		r.Participants = append(r.Participants, rp)
	}
	return r
}

// Redirect is where a join should go instead of this node.
type Redirect struct {
	URL    string
	Node   string
	Ticket string // for the join at Node (may be empty)
}

// Place decides where a join for room goes: nil to take it here, or the
// node to send the client to. avoid names a node the client could not
// reach. Without the registry (NATS away) every join stays here.
func (n *Node) Place(ctx context.Context, room, avoid, ticket string) *Redirect {
	local := 0
	if info, err := n.rooms.Room(room); err == nil {
		local = len(info.Participants)
	}
	capPerNode := 0 // a room spreads only where the trunk can join it up
	if n.bridge != nil {
		capPerNode = n.cfg.MaxParticipantsPerNodeRoom
	}
	// A ticket is honoured while there is space: the node that sent the
	// client may have thought so on a roster that lagged.
	if ticket != "" && (capPerNode <= 0 || local < capPerNode) && n.redeem(ctx, ticket) {
		return nil
	}
	open := len(n.rooms.List())
	n.mu.Lock()
	n.view.selfRooms = open
	d := choose(n.view, room, local, time.Now(), avoid, capPerNode, rand.IntN)
	if ce := n.log.Check(zap.DebugLevel, "placement"); ce != nil {
		ce.Write(zap.String("room", room), zap.Int("local", local), zap.Any("hosts", n.view.hosts(room)),
			zap.Bool("here", d.here), zap.String("to", d.node.ID), zap.Bool("fresh", d.fresh))
	}
	kv := n.kv
	frozen := n.view.frozen
	n.mu.Unlock()
	if d.fresh && kv != nil && !frozen {
		d = n.claim(ctx, kv, room, d, avoid)
	}
	if d.here || d.node.URL == "" {
		return nil
	}
	n.stats.redirects.Add(1)
	r := &Redirect{URL: d.node.URL, Node: d.node.ID}
	if kv != nil && !frozen {
		r.Ticket = n.issue(ctx, kv, d.node.ID)
	}
	return r
}

// Tickets: a redirect carries one, naming the node it sends the client to,
// which takes the client on it without deciding again. Its picture of the
// room may lag (a roster not yet arrived) and, deciding on its own, it
// could send the client back. A ticket is good once, for claimTTL.

func ticketKey(t string) string { return "t." + t }

func (n *Node) issue(ctx context.Context, kv *buckets, node string) string {
	var b [12]byte
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	t := base64.RawURLEncoding.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if _, err := kv.claims.Put(ctx, ticketKey(t), []byte(node)); err != nil {
		n.registryError("issue a redirect ticket", err)
		return ""
	}
	return t
}

// redeem says whether ticket sends its holder here, and uses it up.
func (n *Node) redeem(ctx context.Context, ticket string) bool {
	kv := n.buckets()
	n.mu.Lock()
	serving := n.state == Serving
	n.mu.Unlock()
	if kv == nil || !serving || len(ticket) > 64 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	e, err := kv.claims.Get(ctx, ticketKey(ticket))
	if err != nil || string(e.Value()) != n.cfg.NodeID {
		return false
	}
	_ = kv.claims.Delete(ctx, ticketKey(ticket))
	return true
}

// claim records the choice of a node for a new room, so that joins racing
// on other nodes follow it; if another node's choice came first, it wins
// while that node is alive.
func (n *Node) claim(ctx context.Context, kv *buckets, room string, d decision, avoid string) decision {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	k := key(room)
	_, err := kv.claims.Create(ctx, k, []byte(d.node.ID))
	if err == nil {
		return d
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		n.registryError("claim a room", err)
		return d
	}
	// Another node's choice came first: it stands while that node can
	// take the room; otherwise ours replaces it, unless a third node's
	// replaced it first.
	for range 2 {
		e, err := kv.claims.Get(ctx, k)
		if err != nil {
			return d
		}
		if l, ok := n.candidate(string(e.Value()), avoid); ok {
			return where(l, n.cfg.NodeID)
		}
		if _, err := kv.claims.Update(ctx, k, []byte(d.node.ID), e.Revision()); err == nil {
			return d
		}
	}
	return d
}

// candidate returns node's lease if it may take a join.
func (n *Node) candidate(node, avoid string) (Lease, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.view.candidates(time.Now(), avoid) {
		if l.ID == node {
			return l, true
		}
	}
	return Lease{}, false
}

// Drain marks the node draining: no new rooms or joins come here, and the
// others learn it at once.
func (n *Node) Drain() {
	n.mu.Lock()
	n.state = Draining
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	if err := n.putLease(ctx); err != nil {
		n.registryError("announce draining", err)
	}
}

// MoveTo is a serving node for this node's clients to move to while it
// drains; nil if there is none.
func (n *Node) MoveTo() *Redirect {
	n.mu.Lock()
	defer n.mu.Unlock()
	var pool []Lease
	for _, l := range n.view.candidates(time.Now(), n.cfg.NodeID) {
		if l.URL != "" {
			pool = append(pool, l)
		}
	}
	if len(pool) == 0 {
		return nil
	}
	l := twoChoices(pool, rand.IntN)
	return &Redirect{URL: l.URL, Node: l.ID}
}

// Origins are the hosts of the other nodes' URLs: their pages may open
// this node's WebSocket (a client redirected here came from one of them).
func (n *Node) Origins() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for id, e := range n.view.nodes {
		if id == n.cfg.NodeID || e.lease.URL == "" {
			continue
		}
		if u, err := url.Parse(e.lease.URL); err == nil && u.Host != "" {
			out = append(out, u.Host)
		}
	}
	return out
}

// Ready is closed once the registry has been set up (for the embedded
// NATS, a few milliseconds after Start), or when it cannot be and the node
// serves alone; until then every join stays here.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// alone says whether the node runs on its embedded NATS, where nobody
// else reads the registry.
func (n *Node) alone() bool { return len(n.cfg.NATS) == 0 }

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Close leaves the cluster: the lease and rosters are deleted, so that the
// others forget this node at once rather than after the lease's TTL.
func (n *Node) Close() {
	if kv := n.buckets(); kv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		_ = kv.nodes.Delete(ctx, key(n.cfg.NodeID))
		n.mu.Lock()
		var mine []string
		for room, nodes := range n.view.rooms {
			if _, ok := nodes[n.cfg.NodeID]; ok {
				mine = append(mine, room)
			}
		}
		n.mu.Unlock()
		for _, r := range n.rooms.List() {
			mine = append(mine, r.Name)
		}
		for _, room := range mine {
			_ = kv.rooms.Delete(ctx, roomKey(room, n.cfg.NodeID))
		}
		cancel()
	}
	n.cancel()
	n.wg.Wait()
	if n.trunkEP != nil {
		_ = n.trunkEP.Close()
	}
	if n.nc != nil {
		n.nc.Close()
	}
	if n.embedded != nil {
		n.embedded.Shutdown()
		n.embedded.WaitForShutdown()
	}
	if n.storeDir != "" {
		_ = os.RemoveAll(n.storeDir)
	}
}

// Keys of the buckets: names are base64url-encoded, as a KV key allows
// only letters, digits and -_=./ and a room may be called anything.
func key(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func unkey(k string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(k)
	return string(b), err
}

func roomKey(room, node string) string { return key(room) + "." + key(node) }

func unroomKey(k string) (room, node string, err error) {
	r, nd, ok := strings.Cut(k, ".")
	if !ok {
		return "", "", fmt.Errorf("bad roster key %q", k)
	}
	if room, err = unkey(r); err != nil {
		return "", "", err
	}
	node, err = unkey(nd)
	return room, node, err
}

// loadMeter turns the process's CPU time and the rooms' byte counters
// into rates over the time between two samples.
type loadMeter struct {
	at      time.Time
	used    time.Duration
	in, out uint64 // RTP bytes, as Rooms.Traffic counts them
	load    Load
}

// sample returns the cores busy and the bit/s received and sent since the
// last sample (0 at the first).
func (m *loadMeter) sample(now time.Time, in, out uint64) (cores float64, inBps, outBps int) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, 0
	}
	used := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if d := now.Sub(m.at); !m.at.IsZero() && d > 0 {
		cores = float64(used-m.used) / float64(d)
		rate := func(now, before uint64) int {
			if now < before { // a moment's miscount as a subscriber left
				return 0
			}
			return int(float64(now-before) * 8 / d.Seconds())
		}
		inBps, outBps = rate(in, m.in), rate(out, m.out)
	}
	m.at, m.used, m.in, m.out = now, used, in, out
	return cores, inBps, outBps
}
