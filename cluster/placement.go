package cluster

import (
	"slices"
	"strings"
	"time"
)

// decision is where a join goes: here, or to node.
type decision struct {
	here bool
	node Lease
	// fresh: the room is open nowhere yet, so the choice must be claimed
	// before anyone is sent there (two nodes choosing at once would split it).
	fresh bool
}

// choose places a join for room, the way the issue of rooms across nodes
// asks: a room stays on the node it is on while it fits (capPerNode
// participants; 0 for no cap); past the cap it spreads to another node; a
// new room goes to the less loaded of two random serving nodes that are
// below their room limit (limits.rooms), and to none when all are at it
// (this node's own checks then refuse the join). local is
// how many participants room has here; avoid is a node the client could
// not reach. pick(n) returns a random index below n.
func choose(v *view, room string, local int, now time.Time, avoid string, capPerNode int, pick func(n int) int) decision {
	cands := v.candidates(now, avoid)
	if len(cands) == 0 {
		return decision{here: true} // nobody else to ask; the caller's own checks apply
	}
	fits := func(n int) bool { return capPerNode <= 0 || n < capPerNode }
	hosts := v.hosts(room)
	// A node that cannot take anyone (gone quiet, draining, unreachable
	// for this client) no longer hosts the room as far as joins go.
	for node := range hosts {
		if !slices.ContainsFunc(cands, func(l Lease) bool { return l.ID == node }) {
			delete(hosts, node)
		}
	}
	if local > 0 {
		hosts[v.self] = local
	} else {
		delete(hosts, v.self)
	}
	var self *Lease
	for i := range cands {
		if cands[i].ID == v.self {
			self = &cands[i]
		}
	}
	if self != nil && local > 0 && fits(local) {
		return decision{here: true}
	}
	// Another node where the room is open and fits: the fullest first, so
	// that a room keeps to as few nodes as it can.
	var best *Lease
	bestN := -1
	for i := range cands {
		n, ok := hosts[cands[i].ID]
		if ok && fits(n) && n > bestN {
			best, bestN = &cands[i], n
		}
	}
	if best != nil {
		return where(*best, v.self)
	}
	pool := cands
	if len(hosts) > 0 {
		// Every node of the room is full (or gone): spread to one that
		// does not have it yet, if there is one; this one first, since
		// the client is here already (and the node it would be sent to
		// might well send it on again).
		pool = slices.DeleteFunc(slices.Clone(cands), func(l Lease) bool { _, ok := hosts[l.ID]; return ok || !v.opensRooms(l) })
		if len(pool) == 0 {
			// Over the cap on a node that has the room, rather than refuse.
			pool = slices.DeleteFunc(slices.Clone(cands), func(l Lease) bool { _, ok := hosts[l.ID]; return !ok })
			if len(pool) == 0 {
				return decision{here: true}
			}
		}
		if slices.ContainsFunc(pool, func(l Lease) bool { return l.ID == v.self }) {
			return decision{here: true}
		}
	}
	if len(hosts) == 0 {
		pool = slices.DeleteFunc(slices.Clone(pool), func(l Lease) bool { return !v.opensRooms(l) })
		if len(pool) == 0 {
			return decision{here: true}
		}
	}
	d := where(twoChoices(pool, pick), v.self)
	d.fresh = len(hosts) == 0 && len(cands) > 1
	return d
}

// opensRooms says whether node l may open another room: below its
// limits.rooms, counted live for this node.
func (v *view) opensRooms(l Lease) bool {
	rooms := l.Load.Rooms
	if l.ID == v.self {
		rooms = v.selfRooms
	}
	return l.MaxRooms <= 0 || rooms < l.MaxRooms
}

func where(l Lease, self string) decision {
	return decision{here: l.ID == self, node: l}
}

// twoChoices is the less loaded of two random nodes of pool (the power of
// two choices: nearly as even as asking everyone, without a herd on the
// single least loaded node).
func twoChoices(pool []Lease, pick func(int) int) Lease {
	if len(pool) == 1 {
		return pool[0]
	}
	i := pick(len(pool))
	j := pick(len(pool) - 1)
	if j >= i {
		j++
	}
	a, b := pool[i], pool[j]
	if lighter(b, a) {
		return b
	}
	return a
}

// lighter says whether a is less loaded than b: fewer participants, then
// less CPU, then the smaller id.
func lighter(a, b Lease) bool {
	if a.Load.Participants != b.Load.Participants {
		return a.Load.Participants < b.Load.Participants
	}
	if a.Load.CPU != b.Load.CPU {
		return a.Load.CPU < b.Load.CPU
	}
	return strings.Compare(a.ID, b.ID) < 0
}
