package signal

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits bound what one client, one address and one room may take, so that
// no client can crowd out the others. Zero means no limit.
type Limits struct {
	// Rooms on the server, and participants in one room.
	Rooms, ParticipantsPerRoom int
	// ConnectionsPerMinute is how many WebSocket connections one client
	// address may open per minute, in bursts of as many.
	ConnectionsPerMinute int
	// MessagesPerSecond is how many messages one connection may send per
	// second, in bursts of twice as many.
	MessagesPerSecond int
	// MessageSize is the largest message in bytes, at most 1 MiB; 0 means
	// MaxMessageSize.
	MessageSize int
}

func (l Limits) messageSize() int {
	if l.MessageSize <= 0 {
		return MaxMessageSize
	}
	return min(l.MessageSize, hardReadLimit)
}

// messageLimiter returns the rate limit of one connection's messages, nil
// for none.
func (l Limits) messageLimiter() *rate.Limiter {
	if l.MessagesPerSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(l.MessagesPerSecond), 2*l.MessagesPerSecond)
}

// occupancy counts joined participants per room, for the room and
// participant limits. It is the signaling layer's own count, taken before
// a participant reaches the sfu, so that a join over the limit costs
// nothing there.
type occupancy struct {
	mu    sync.Mutex
	rooms map[string]int
	total int
}

// reserve takes a place in room, or says which limit is reached.
func (o *occupancy) reserve(room string, l Limits) *Error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.rooms == nil {
		o.rooms = map[string]int{}
	}
	n, exists := o.rooms[room]
	if !exists && l.Rooms > 0 && len(o.rooms) >= l.Rooms {
		return errorf(CodeServerFull, "the server has its maximum of %d rooms", l.Rooms)
	}
	if l.ParticipantsPerRoom > 0 && n >= l.ParticipantsPerRoom {
		return errorf(CodeRoomFull, "room %q has its maximum of %d participants", room, l.ParticipantsPerRoom)
	}
	o.rooms[room] = n + 1
	o.total++
	return nil
}

// release gives back a place that reserve took.
func (o *occupancy) release(room string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.rooms[room]--; o.rooms[room] <= 0 {
		delete(o.rooms, room)
	}
	o.total--
}

// participants is how many places are taken.
func (o *occupancy) participants() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.total
}

// perAddress limits how often each client address may connect. Addresses
// whose bucket has refilled are forgotten, so the map holds only recent
// ones.
type perAddress struct {
	mu        sync.Mutex
	limiters  map[string]*rate.Limiter
	lastPrune time.Time
}

// allow reports whether addr may open another connection, at perMinute
// connections per minute.
func (p *perAddress) allow(addr string, perMinute int) bool {
	if perMinute <= 0 {
		return true
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.limiters == nil {
		p.limiters = map[string]*rate.Limiter{}
	}
	if now.Sub(p.lastPrune) > time.Minute {
		for a, l := range p.limiters {
			if l.TokensAt(now) >= float64(l.Burst()) {
				delete(p.limiters, a)
			}
		}
		p.lastPrune = now
	}
	l := p.limiters[addr]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(float64(perMinute)/60), perMinute)
		p.limiters[addr] = l
	}
	return l.AllowN(now, 1)
}
