package signal

import (
	"testing"
	"time"
)

func TestOccupancy(t *testing.T) {
	var o occupancy
	l := Limits{Rooms: 2, ParticipantsPerRoom: 2}
	for _, room := range []string{"a", "a", "b"} {
		if e := o.reserve(room, l); e != nil {
			t.Fatalf("reserve %s: %v", room, e)
		}
	}
	if e := o.reserve("a", l); e == nil || e.Code != CodeRoomFull {
		t.Errorf("third in a: %v, want room-full", e)
	}
	if e := o.reserve("c", l); e == nil || e.Code != CodeServerFull {
		t.Errorf("third room: %v, want server-full", e)
	}
	o.release("b")
	if e := o.reserve("c", l); e != nil {
		t.Errorf("a room freed by its last participant is not available: %v", e)
	}
	if n := o.participants(); n != 3 {
		t.Errorf("%d participants, want 3", n)
	}
	if e := o.reserve("d", Limits{}); e != nil {
		t.Errorf("no limits: %v", e)
	}
}

func TestPerAddress(t *testing.T) {
	var p perAddress
	for i := range 3 {
		if !p.allow("192.0.2.1", 3) {
			t.Fatalf("connection %d refused", i+1)
		}
	}
	if p.allow("192.0.2.1", 3) {
		t.Error("fourth connection in a minute allowed")
	}
	if !p.allow("192.0.2.2", 3) {
		t.Error("another address refused")
	}
	if !p.allow("192.0.2.1", 0) {
		t.Error("refused with no limit")
	}
	// A full bucket is forgotten at the next prune: the map holds only
	// addresses seen in the last minute or so.
	p.lastPrune = time.Now().Add(-2 * time.Minute)
	p.limiters["192.0.2.2"].SetBurstAt(time.Now(), 1) // refilled
	p.allow("192.0.2.3", 3)
	if _, ok := p.limiters["192.0.2.2"]; ok {
		t.Error("a refilled address was kept")
	}
	if _, ok := p.limiters["192.0.2.1"]; !ok {
		t.Error("an address still limited was forgotten")
	}
}
