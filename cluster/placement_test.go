package cluster

import (
	"testing"
	"time"
)

// cluster3 is a view from node a of nodes a, b and c, all serving and fresh.
func cluster3(now time.Time) *view {
	v := newView("a")
	for _, id := range []string{"a", "b", "c"} {
		v.setLease(Lease{ID: id, URL: "https://" + id + "/", State: Serving}, now)
	}
	return v
}

func roster(room, node string, n int) Roster {
	r := Roster{Room: room, Node: node}
	for i := range n {
		r.Participants = append(r.Participants, Participant{ID: node + string(rune('0'+i))})
	}
	return r
}

func first(int) int { return 0 }

func TestChooseKeepsARoomWhereItIs(t *testing.T) {
	now := time.Now()
	v := cluster3(now)
	v.setRoster(roster("x", "b", 2))
	if d := choose(v, "x", 0, now, "", 0, first); d.here || d.node.ID != "b" || d.fresh {
		t.Errorf("room on b, join at a: %+v, want a redirect to b", d)
	}
	if d := choose(v, "x", 1, now, "", 0, first); !d.here {
		t.Errorf("room also here: %+v, want here", d)
	}
}

func TestChooseNewRoomGoesToTheLighterOfTwo(t *testing.T) {
	now := time.Now()
	v := cluster3(now)
	v.setLease(Lease{ID: "a", State: Serving, Load: Load{Participants: 9}}, now)
	v.setLease(Lease{ID: "b", URL: "https://b/", State: Serving, Load: Load{Participants: 1}}, now)
	d := choose(v, "new", 0, now, "", 0, first) // picks a and b
	if d.here || d.node.ID != "b" || !d.fresh {
		t.Errorf("new room: %+v, want fresh on b (lighter than a)", d)
	}
}

func TestChooseSkipsDrainingStaleAndAvoided(t *testing.T) {
	now := time.Now()
	v := cluster3(now)
	v.setRoster(roster("x", "b", 1))
	v.setLease(Lease{ID: "b", URL: "https://b/", State: Draining}, now)
	if d := choose(v, "x", 0, now, "", 0, first); d.node.ID == "b" {
		t.Errorf("draining host chosen: %+v", d)
	}
	v.setLease(Lease{ID: "b", URL: "https://b/", State: Serving}, now.Add(-freshness-time.Millisecond))
	if d := choose(v, "x", 0, now, "", 0, first); d.node.ID == "b" {
		t.Errorf("host with a stale lease chosen: %+v", d)
	}
	v.setLease(Lease{ID: "b", URL: "https://b/", State: Serving}, now)
	if d := choose(v, "x", 0, now, "b", 0, first); d.node.ID == "b" {
		t.Errorf("host the client could not reach chosen: %+v", d)
	}
}

func TestChooseSpreadsPastTheCap(t *testing.T) {
	now := time.Now()
	v := cluster3(now)
	v.setRoster(roster("x", "b", 3))
	d := choose(v, "x", 0, now, "", 3, first)
	if !d.here || d.fresh {
		t.Errorf("b full, join at a: %+v, want here, not a fresh room", d)
	}
	v.setRoster(roster("x", "a", 3))
	if d := choose(v, "x", 3, now, "", 3, first); d.node.ID != "c" {
		t.Errorf("a and b full, join at a: %+v, want c", d)
	}
	v.deleteRoster("x", "a")
	v.setRoster(roster("x", "c", 1))
	if d := choose(v, "x", 0, now, "", 3, first); d.node.ID != "c" {
		t.Errorf("b full, c has room: %+v, want c", d)
	}
}

func TestChooseAloneOrFrozenStaysHere(t *testing.T) {
	now := time.Now()
	v := newView("a")
	v.setLease(Lease{ID: "a", State: Serving}, now)
	if d := choose(v, "x", 0, now, "", 0, first); !d.here {
		t.Errorf("single node: %+v, want here", d)
	}
	v = cluster3(now.Add(-time.Minute))
	v.setLease(Lease{ID: "a", State: Serving}, now)
	v.frozen = true
	if got := v.expire(now); len(got) != 0 {
		t.Errorf("frozen view expired %v", got)
	}
	v.frozen = false
	if got := v.expire(now); len(got) != 2 {
		t.Errorf("expired %v, want b and c", got)
	}
}

// A node at its limits.rooms opens no new room, here or elsewhere, and
// still takes joins for the rooms it has; when every node is at it, the
// join stays here for this node's own checks to refuse.
func TestChooseSkipsNodesAtTheirRoomLimit(t *testing.T) {
	now := time.Now()
	v := cluster3(now)
	v.setLease(Lease{ID: "a", State: Serving, MaxRooms: 2}, now)
	v.selfRooms = 2 // a's lease still says 0: the live count decides
	v.setLease(Lease{ID: "b", URL: "https://b/", State: Serving, MaxRooms: 5, Load: Load{Rooms: 5}}, now)
	for i := range 3 {
		pick := func(n int) int { return i % n }
		if d := choose(v, "new", 0, now, "", 0, pick); d.here || d.node.ID != "c" {
			t.Errorf("new room with a and b at their limits: %+v, want c", d)
		}
	}
	v.setRoster(roster("x", "b", 1))
	if d := choose(v, "x", 0, now, "", 0, first); d.node.ID != "b" {
		t.Errorf("a room b has: %+v, want b although b is at its room limit", d)
	}
	// Past the cap on b, the room spreads, but not to a, which is full.
	v.setRoster(roster("y", "b", 2))
	if d := choose(v, "y", 0, now, "", 2, first); d.here || d.node.ID != "c" {
		t.Errorf("spreading: %+v, want c", d)
	}
	v.setLease(Lease{ID: "c", URL: "https://c/", State: Serving, MaxRooms: 1, Load: Load{Rooms: 1}}, now)
	for i := range 3 {
		pick := func(n int) int { return i % n }
		if d := choose(v, "y", 0, now, "", 2, pick); d.node.ID != "b" {
			t.Errorf("nowhere to spread to: %+v, want b, over its cap, rather than a node at its room limit", d)
		}
	}
	if d := choose(v, "new", 0, now, "", 0, first); !d.here {
		t.Errorf("every node at its room limit: %+v, want here (refused by the local checks)", d)
	}
}
