package sfu

import (
	"fmt"

	"github.com/pion/webrtc/v4"
)

// The room's data on Pion: each participant's subscriber connection
// carries two data channels that the server opens (so that the first
// subscriber offer has them), used both ways: the client sends on them and
// receives what the others sent (datarelay.go).

// SetDataLimits sets the limits of room data; call it before the first Join.
func (rs *Rooms) SetDataLimits(l DataLimits) { rs.dataLimits = l.withDefaults() }

// SetDataBridge sets where the rooms' data messages for participants on
// other nodes go (a cluster); call it before the first Join.
func (rs *Rooms) SetDataBridge(out func(room string, m RoomData)) { rs.dataOut = out }

// DeliverData hands a data message from another node to room's
// participants here.
func (rs *Rooms) DeliverData(room string, m RoomData) {
	if r, err := rs.room(room); err == nil {
		r.data.receiveRemote(m)
	}
}

// newRoomData is the data relay of room r.
func newRoomData(r *Room) *dataRelay {
	d := newDataRelay(r.rooms.dataLimits, r.dataPorts)
	if out := r.rooms.dataOut; out != nil {
		d.out = func(m RoomData) { out(r.name, m) }
		d.remote = func(id string) bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			_, ok := r.remotes[id]
			return ok
		}
	}
	return d
}

// dataPorts are the data ports of everyone in the room.
func (r *Room) dataPorts() []*dataPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*dataPort, 0, len(r.participants))
	for _, p := range r.participants {
		if p.data != nil {
			out = append(out, p.data)
		}
	}
	return out
}

// openData opens p's data channels on its subscriber connection. When the
// reliable one opens, the room's chat history goes first, then whatever
// arrived since p joined.
func (p *Participant) openData() error {
	reliable, err := p.sub.CreateDataChannel(DataLabel, nil)
	if err != nil {
		return fmt.Errorf("data channel: %w", err)
	}
	unordered, none := false, uint16(0)
	lossy, err := p.sub.CreateDataChannel(LossyLabel, &webrtc.DataChannelInit{Ordered: &unordered, MaxRetransmits: &none})
	if err != nil {
		return fmt.Errorf("lossy data channel: %w", err)
	}
	relay := p.room.data
	port := newDataPort(dataFrom{ID: p.info.ID, Name: p.info.Name}, relay.limits, reliable, lossy)
	p.data = port
	reliable.SetBufferedAmountLowThreshold(dataLowWater)
	// Pion calls this inside its SCTP read loop: only wake the pump.
	reliable.OnBufferedAmountLow(port.queue.wake)
	reliable.OnOpen(func() {
		port.queue.prepend(relay.history.all())
		go func() {
			defer p.contain("data")
			port.queue.pump(p.done)
		}()
	})
	reliable.OnMessage(func(m webrtc.DataChannelMessage) {
		defer p.contain("data")
		relay.receive(port, m.Data, m.IsString, false)
	})
	lossy.OnMessage(func(m webrtc.DataChannelMessage) {
		defer p.contain("data")
		relay.receive(port, m.Data, m.IsString, true)
	})
	return nil
}
