package sfu

import "sync"

// Flow control of the reliable data channel, per receiver: the relay never
// waits for a receiver. What it sends a receiver waits in that receiver's
// dataQueue, bounded in bytes; a pump writes to the channel while the
// channel's own buffer is below dataHighWater, and is woken again when the
// buffer drains to dataLowWater (OnBufferedAmountLow). A message that does
// not fit in the queue is refused, and the relay tells its sender and the
// receiver: one slow receiver costs the others nothing and memory stays
// bounded.
const (
	dataHighWater = 1 << 20
	dataLowWater  = 256 << 10
	// dataErrorSlack lets error messages through a full queue, this far.
	dataErrorSlack = 64 << 10
)

// dataSink is where a queue writes: a data channel, or a fake in tests.
type dataSink interface {
	SendText(string) error
	BufferedAmount() uint64
}

type dataQueue struct {
	sink dataSink
	max  int // bytes queued at most
	kick chan struct{}

	mu     sync.Mutex
	items  [][]byte
	bytes  int
	broken bool // a send failed: the channel is gone
}

func newDataQueue(sink dataSink, max int) *dataQueue {
	return &dataQueue{sink: sink, max: max, kick: make(chan struct{}, 1)}
}

// push queues b for the receiver; false when it does not fit.
func (q *dataQueue) push(b []byte) bool { return q.add(b, q.max) }

// pushError queues an error message, which may go past the bound a little.
func (q *dataQueue) pushError(b []byte) { q.add(b, q.max+dataErrorSlack) }

func (q *dataQueue) add(b []byte, limit int) bool {
	q.mu.Lock()
	if q.broken || q.bytes+len(b) > limit {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, b)
	q.bytes += len(b)
	q.mu.Unlock()
	q.wake()
	return true
}

// prepend puts msgs before everything queued (the chat history of a
// newcomer goes before what arrived since it joined); past the bound, the
// oldest of them are left out. A message already queued is not put in
// twice: a newcomer may chat before the server sees its channel open, and
// its echo is then both queued and in the history (the history holds the
// very slices the relay queues, so identity tells them apart).
func (q *dataQueue) prepend(msgs [][]byte) {
	q.mu.Lock()
	if len(q.items) > 0 {
		queued := make(map[*byte]bool, len(q.items))
		for _, b := range q.items {
			if len(b) > 0 {
				queued[&b[0]] = true
			}
		}
		fresh := make([][]byte, 0, len(msgs))
		for _, b := range msgs {
			if len(b) == 0 || !queued[&b[0]] {
				fresh = append(fresh, b)
			}
		}
		msgs = fresh
	}
	room := q.max - q.bytes
	first := len(msgs)
	for first > 0 && len(msgs[first-1]) <= room {
		first--
		room -= len(msgs[first])
	}
	msgs = msgs[first:]
	items := make([][]byte, 0, len(msgs)+len(q.items))
	q.items = append(append(items, msgs...), q.items...)
	for _, b := range msgs {
		q.bytes += len(b)
	}
	q.mu.Unlock()
	q.wake()
}

// wake makes the pump look again (OnBufferedAmountLow, a new message).
func (q *dataQueue) wake() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// queued is how many bytes wait.
func (q *dataQueue) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// pump writes queued messages to the sink while its buffer has room, until
// done is closed or a send fails. It runs once the channel is open.
func (q *dataQueue) pump(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-q.kick:
		}
		for q.sink.BufferedAmount() < dataHighWater {
			q.mu.Lock()
			if len(q.items) == 0 {
				q.mu.Unlock()
				break
			}
			b := q.items[0]
			q.items[0] = nil
			q.items = q.items[1:]
			q.bytes -= len(b)
			q.mu.Unlock()
			if err := q.sink.SendText(string(b)); err != nil {
				q.mu.Lock()
				q.broken = true
				q.items, q.bytes = nil, 0
				q.mu.Unlock()
				return
			}
		}
	}
}
