package signal

import (
	"strconv"
)

// Bounds of what the server keeps for a client that may resume: enough for
// a busy room's news over the resume grace; a client that missed more
// joins again instead (it gets the room's state afresh in joined).
const (
	outboxMessages = 512
	outboxBytes    = 512 << 10
)

// outbox numbers the messages a participant is sent and keeps the latest,
// so that a client that lost its connection can be given exactly what it
// missed: everything after the last sequence number it saw, in order, once.
type outbox struct {
	next  uint64   // sequence number of the next message; the first is 1
	kept  [][]byte // the stamped messages first, first+1, ...
	first uint64
	bytes int
}

// add stamps msg (a JSON object) with the next sequence number, keeps it,
// and returns the stamped message.
func (o *outbox) add(msg []byte) []byte {
	if o.next == 0 {
		o.next, o.first = 1, 1
	}
	stamped := stamp(msg, o.next)
	o.next++
	o.kept = append(o.kept, stamped)
	o.bytes += len(stamped)
	for len(o.kept) > outboxMessages || (o.bytes > outboxBytes && len(o.kept) > 1) {
		o.bytes -= len(o.kept[0])
		o.kept[0] = nil
		o.kept = o.kept[1:]
		o.first++
	}
	return stamped
}

// since returns the messages after seq, oldest first; false if some of
// them are no longer kept, or seq is one the client cannot have seen.
func (o *outbox) since(seq uint64) ([][]byte, bool) {
	last := o.next - 1
	if o.next == 0 {
		last = 0
	}
	if seq > last {
		return nil, false
	}
	if seq == last {
		return nil, true
	}
	if seq+1 < o.first {
		return nil, false
	}
	return o.kept[seq+1-o.first:], true
}

// last is the sequence number of the latest message, 0 before the first.
func (o *outbox) last() uint64 {
	if o.next == 0 {
		return 0
	}
	return o.next - 1
}

// stamp inserts "seq":n as the first field of the JSON object msg.
func stamp(msg []byte, n uint64) []byte {
	b := make([]byte, 0, len(msg)+24)
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, n, 10)
	if len(msg) > 2 {
		b = append(b, ',')
	}
	return append(b, msg[1:]...)
}
