package sfu

import "sync"

// The chat history a room keeps for those who join later: the last
// chatLogMessages messages to everyone, at most chatLogBytes in all.
const (
	chatLogMessages = 100
	chatLogBytes    = 1 << 20
)

// chatLog is a bounded ring of encoded chat messages, oldest first.
type chatLog struct {
	mu    sync.Mutex
	ring  [chatLogMessages][]byte
	start int // index of the oldest
	n     int
	bytes int
}

// add appends a message, forgetting the oldest past either bound.
func (l *chatLog) add(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.n > 0 && (l.n == chatLogMessages || l.bytes+len(b) > chatLogBytes) {
		l.bytes -= len(l.ring[l.start])
		l.ring[l.start] = nil
		l.start = (l.start + 1) % chatLogMessages
		l.n--
	}
	if len(b) > chatLogBytes {
		return
	}
	l.ring[(l.start+l.n)%chatLogMessages] = b
	l.n++
	l.bytes += len(b)
}

// all returns the messages kept, oldest first.
func (l *chatLog) all() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([][]byte, l.n)
	for i := range out {
		out[i] = l.ring[(l.start+i)%chatLogMessages]
	}
	return out
}
