package cluster

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// Node states, as leases carry them.
const (
	Serving  = "serving"
	Draining = "draining"
)

// Lease is what a node says of itself in the registry, refreshed every
// leaseRefresh; a node whose lease is not renewed within leaseTTL is gone.
type Lease struct {
	ID    string `json:"id"`
	URL   string `json:"url"` // where clients reach it (cluster.advertise-url)
	State string `json:"state"`
	Load  Load   `json:"load"`
	// Trunk is the node's media address for other nodes ("host:port") and
	// TrunkKey its public key (X25519); empty without a trunk.
	Trunk    string `json:"trunk,omitempty"`
	TrunkKey []byte `json:"trunkKey,omitempty"`
	// MaxRooms is the node's limits.rooms (0: none): at it, the node
	// takes joins for the rooms it has but opens no other.
	MaxRooms int `json:"maxRooms,omitempty"`
}

// Load is what placement weighs.
type Load struct {
	CPU          float64 `json:"cpu"` // cores busy, over the last refresh
	Participants int     `json:"participants"`
	Rooms        int     `json:"rooms"`
	Tracks       int     `json:"tracks"`
	// BitrateIn and BitrateOut are the RTP received and sent, bit/s, over
	// the last refresh.
	BitrateIn  int `json:"bitrateIn"`
	BitrateOut int `json:"bitrateOut"`
}

// Roster is one node's part of one room.
type Roster struct {
	Room         string        `json:"room"`
	Node         string        `json:"node"`
	Participants []Participant `json:"participants"`
}

// Participant is one participant of a roster with what it publishes.
type Participant struct {
	ID           string  `json:"id"`
	Name         string  `json:"name,omitempty"`
	Reconnecting bool    `json:"reconnecting,omitempty"`
	Tracks       []Track `json:"tracks,omitempty"`
}

// Track is one published track of a roster.
type Track struct {
	ID     string   `json:"id"`
	Kind   string   `json:"kind"`
	Codec  string   `json:"codec"`
	Source string   `json:"source,omitempty"`
	Layers []string `json:"layers,omitempty"`
	Muted  bool     `json:"muted,omitempty"`
	// SSRC is the trunk SSRC of the track's lowest layer; layer i is SSRC+i.
	SSRC uint32 `json:"ssrc,omitempty"`
	// LevelExt is the audio level extension's id in the packets (0: none).
	LevelExt uint8 `json:"levelExt,omitempty"`
}

// Timing of leases. A lease younger than freshness is trusted for
// placement; one older than leaseTTL is a dead node.
const (
	leaseRefresh = 2 * time.Second
	freshness    = 3 * time.Second
	leaseTTL     = 6 * time.Second
)

// view is a node's picture of the cluster as the registry's watchers
// deliver it, with the local time each lease was last seen renewed. It is
// pure: the caller passes the time and serializes access.
type view struct {
	self   string
	nodes  map[string]nodeEntry
	rooms  map[string]map[string]Roster // room -> node -> roster
	frozen bool                         // the registry is unreachable: nobody expires
	// selfRooms is how many rooms are open here now; this node's own
	// lease says what it was at the last refresh.
	selfRooms int
}

type nodeEntry struct {
	lease Lease
	seen  time.Time
}

func newView(self string) *view {
	return &view{self: self, nodes: map[string]nodeEntry{}, rooms: map[string]map[string]Roster{}}
}

// setLease records a node's renewed lease.
func (v *view) setLease(l Lease, now time.Time) { v.nodes[l.ID] = nodeEntry{lease: l, seen: now} }

// setRoster records a node's part of a room; an empty roster removes it.
func (v *view) setRoster(r Roster) {
	if len(r.Participants) == 0 {
		v.deleteRoster(r.Room, r.Node)
		return
	}
	if v.rooms[r.Room] == nil {
		v.rooms[r.Room] = map[string]Roster{}
	}
	v.rooms[r.Room][r.Node] = r
}

func (v *view) deleteRoster(room, node string) {
	delete(v.rooms[room], node)
	if len(v.rooms[room]) == 0 {
		delete(v.rooms, room)
	}
}

// expire forgets the nodes whose leases lapsed, with their rosters, and
// returns their ids. Nothing expires while the view is frozen (the registry
// cannot be read, so silence means nothing).
func (v *view) expire(now time.Time) []string {
	if v.frozen {
		return nil
	}
	var gone []string
	for id, n := range v.nodes {
		if id != v.self && now.Sub(n.seen) > leaseTTL {
			gone = append(gone, id)
			delete(v.nodes, id)
		}
	}
	for _, id := range gone {
		for room := range v.rooms {
			v.deleteRoster(room, id)
		}
	}
	slices.Sort(gone)
	return gone
}

// alive says whether node's lease has not lapsed.
func (v *view) alive(node string, now time.Time) bool {
	n, ok := v.nodes[node]
	return ok && (node == v.self || v.frozen || now.Sub(n.seen) <= leaseTTL)
}

// candidates are the nodes that may take a new participant: serving, their
// lease fresh, not avoid; sorted by id so that choices are reproducible.
func (v *view) candidates(now time.Time, avoid string) []Lease {
	var out []Lease
	for id, n := range v.nodes {
		if id == avoid || n.lease.State != Serving {
			continue
		}
		if id != v.self && now.Sub(n.seen) > freshness {
			continue
		}
		out = append(out, n.lease)
	}
	slices.SortFunc(out, func(a, b Lease) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// hosts returns, per node, how many participants it has in room.
func (v *view) hosts(room string) map[string]int {
	out := map[string]int{}
	for node, r := range v.rooms[room] {
		out[node] = len(r.Participants)
	}
	return out
}

// remote returns the rosters of room on other live nodes, by node id.
func (v *view) remote(room string, now time.Time) []Roster {
	var out []Roster
	for _, node := range slices.Sorted(maps.Keys(v.rooms[room])) {
		if node != v.self && v.alive(node, now) {
			out = append(out, v.rooms[room][node])
		}
	}
	return out
}
