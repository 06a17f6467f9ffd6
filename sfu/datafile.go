package sfu

import (
	"encoding/json"
	"fmt"
	"sync"
	"unicode/utf8"
)

// File transfer over the reliable data channel (docs/protocol.md, "Files"):
// a sender offers a file, sends it in chunks of at most fileChunkSize bytes
// (base64 in JSON text) and ends it; the relay passes each chunk on to the
// receivers as it comes and keeps nothing of it but what waits in each
// receiver's bounded dataQueue. Receivers acknowledge what they got; the
// relay tells the sender the slowest live receiver's progress, and the
// sender keeps at most a window unacknowledged: that is what keeps the
// receivers' queues from overflowing on a fast sender. A receiver that does
// overflow, cancels or leaves is dropped from that transfer alone; the
// others carry on, and the sender no longer waits for its acknowledgements.

const (
	// fileChunkSize is the most raw bytes one file-chunk carries.
	fileChunkSize = 16 << 10
	// filesPerSender is how many transfers one participant may have open.
	filesPerSender = 4
	// maxFileName is the longest file name, in bytes.
	maxFileName = 255
	// maxChannelMessage is the most a data channel message may carry (the
	// max-message-size the server's SDP declares), whatever data.message-size.
	maxChannelMessage = 64 << 10
)

// fileTransfer is one offered file on its way.
type fileTransfer struct {
	id       string // the server's id, which receivers see
	clientID string // the sender's own id for it
	from     *dataPort
	size     int64
	sent     int64 // bytes relayed so far
	nextSeq  int64
	// receivers still in it, with the last seq each acknowledged (-1: none)
	receivers map[*dataPort]int64
	acked     int64 // the least of the receivers' acks last told to the sender
	ended     bool  // the sender sent file-end
}

// files are the transfers of a room.
type files struct {
	mu       sync.Mutex
	byID     map[string]*fileTransfer               // server id
	bySender map[*dataPort]map[string]*fileTransfer // sender, its id
}

// fileOut is what the relay sends about a file, to receivers or sender.
type fileOut struct {
	Type        string          `json:"type"`
	File        string          `json:"file"`
	From        *dataFrom       `json:"from,omitempty"`
	TS          int64           `json:"ts,omitempty"`
	Name        string          `json:"name,omitempty"`
	Size        *int64          `json:"size,omitempty"`
	Mime        string          `json:"mime,omitempty"`
	To          []string        `json:"to,omitempty"`
	Seq         *int64          `json:"seq,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	Reason      string          `json:"reason,omitempty"`
	Participant string          `json:"participant,omitempty"`
}

func encode(m fileOut) []byte {
	b, err := json.Marshal(m)
	if err != nil { // data is checked base64 in quotes: cannot fail
		panic(err)
	}
	return b
}

// base64Len is the number of bytes the JSON string raw (quotes included)
// decodes to as standard base64; -1 if it is not that.
func base64Len(raw []byte) int {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return -1
	}
	s := raw[1 : len(raw)-1]
	if len(s)%4 != 0 {
		return -1
	}
	pad := 0
	for i, c := range s {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			if pad > 0 {
				return -1
			}
		case c == '=' && i >= len(s)-2:
			pad++
		default:
			return -1
		}
	}
	return len(s)/4*3 - pad
}

func (f *files) sender(p *dataPort) map[string]*fileTransfer {
	if f.bySender == nil {
		f.byID = map[string]*fileTransfer{}
		f.bySender = map[*dataPort]map[string]*fileTransfer{}
	}
	m := f.bySender[p]
	if m == nil {
		m = map[string]*fileTransfer{}
		f.bySender[p] = m
	}
	return m
}

// end forgets t; f.mu held.
func (f *files) end(t *fileTransfer) {
	delete(f.byID, t.id)
	delete(f.bySender[t.from], t.clientID)
	if len(f.bySender[t.from]) == 0 {
		delete(f.bySender, t.from)
	}
}

// receiveFile handles a file message from a participant; in is decoded and
// checked by decodeData.
func (r *dataRelay) receiveFile(from *dataPort, in dataIn, to []string) {
	f := &r.files
	f.mu.Lock()
	defer f.mu.Unlock()
	switch in.Type {
	case "file-offer":
		r.offer(from, in, to)
	case "file-chunk":
		t := f.sender(from)[in.File]
		if t == nil {
			return // cancelled while chunks were on their way: dropped
		}
		n := base64Len(in.Data)
		if n < 0 || n > fileChunkSize || *in.Seq != t.nextSeq {
			from.fail(badMessage("file-chunk: want seq %d with data of up to %d bytes in base64", t.nextSeq, fileChunkSize))
			r.cancel(t, "bad-message")
			return
		}
		if t.sent+int64(n) > t.size {
			from.fail(&dataError{Code: codeTooLarge, Message: fmt.Sprintf("the file is bigger than the %d bytes offered", t.size), Ref: t.clientID})
			r.cancel(t, "too-large")
			return
		}
		t.sent += int64(n)
		t.nextSeq++
		seq := *in.Seq
		enc := encode(fileOut{Type: "file-chunk", File: t.id, Seq: &seq, Data: in.Data})
		for p := range t.receivers {
			if !p.queue.push(enc) {
				r.drop(t, p, "overflow")
			}
		}
	case "file-end":
		t := f.sender(from)[in.File]
		if t == nil {
			return
		}
		if t.sent != t.size {
			from.fail(badMessage("file-end: %d bytes sent of %d offered", t.sent, t.size))
			r.cancel(t, "bad-message")
			return
		}
		enc := encode(fileOut{Type: "file-end", File: t.id})
		for p := range t.receivers {
			if !p.queue.push(enc) {
				r.drop(t, p, "overflow")
			}
		}
		// It stays until the receivers have acknowledged all of it, so
		// that the sender learns they got it.
		t.ended = true
		r.progress(t)
	case "file-ack":
		t := f.byID[in.File]
		if t == nil {
			return
		}
		if last, ok := t.receivers[from]; ok && *in.Seq > last && *in.Seq < t.nextSeq {
			t.receivers[from] = *in.Seq
			r.progress(t)
		}
	case "file-cancel":
		if t := f.sender(from)[in.File]; t != nil {
			r.cancel(t, "cancelled")
		} else if t := f.byID[in.File]; t != nil {
			if _, ok := t.receivers[from]; ok {
				r.drop(t, from, "cancelled")
			}
		}
	}
}

// offer opens a transfer and tells its receivers; f.mu held.
func (r *dataRelay) offer(from *dataPort, in dataIn, to []string) {
	f := &r.files
	mine := f.sender(from)
	switch {
	case r.limits.FileSize < 0:
		from.fail(&dataError{Code: codeTooLarge, Message: "this server takes no files", Ref: in.File})
		return
	case *in.Size > r.limits.FileSize:
		from.fail(&dataError{Code: codeTooLarge, Message: fmt.Sprintf("file of %d bytes; the limit is %d", *in.Size, r.limits.FileSize), Ref: in.File})
		return
	case mine[in.File] != nil:
		from.fail(&dataError{Code: codeBadMessage, Message: "file-offer: this file id is in use", Ref: in.File})
		return
	case len(mine) >= filesPerSender:
		from.fail(&dataError{Code: codeBadMessage, Message: fmt.Sprintf("file-offer: at most %d files at once", filesPerSender), Ref: in.File})
		return
	}
	targets := r.targets(from, to)
	if len(targets) == 0 {
		from.fail(&dataError{Code: codeBadMessage, Message: "nobody to send the file to", Ref: in.File})
		return
	}
	t := &fileTransfer{id: randomID(), clientID: in.File, from: from, size: *in.Size, receivers: map[*dataPort]int64{}, acked: -1}
	size := t.size
	who := from.who
	enc := encode(fileOut{Type: "file-offer", File: t.id, From: &who, TS: r.now().UnixMilli(), Name: *in.Name, Size: &size, Mime: in.Mime, To: to})
	for _, p := range targets {
		if p.queue.push(enc) {
			t.receivers[p] = -1
		}
	}
	mine[t.clientID] = t
	f.byID[t.id] = t
	// The sender learns the server's id and who gets it.
	ids := make([]string, 0, len(t.receivers))
	for p := range t.receivers {
		ids = append(ids, p.who.ID)
	}
	from.queue.pushError(encode(fileOut{Type: "file-accepted", File: t.clientID, Size: &size, To: ids}))
	if len(t.receivers) == 0 {
		r.cancel(t, "overflow")
	}
}

// progress tells the sender the least seq all live receivers have
// acknowledged, when it grew; and ends a finished transfer. f.mu held.
func (r *dataRelay) progress(t *fileTransfer) {
	least := int64(-1)
	first := true
	for _, a := range t.receivers {
		if first || a < least {
			least, first = a, false
		}
	}
	if first { // nobody left
		return
	}
	if least > t.acked {
		t.acked = least
		seq := least
		t.from.queue.pushError(encode(fileOut{Type: "file-ack", File: t.clientID, Seq: &seq}))
	}
	if t.ended && least == t.nextSeq-1 {
		t.from.queue.pushError(encode(fileOut{Type: "file-end", File: t.clientID}))
		r.files.end(t)
	}
}

// drop takes receiver p out of t (it overflowed, cancelled or left): it
// and the sender are told; the others carry on. f.mu held.
func (r *dataRelay) drop(t *fileTransfer, p *dataPort, reason string) {
	delete(t.receivers, p)
	p.queue.pushError(encode(fileOut{Type: "file-cancel", File: t.id, Reason: reason}))
	t.from.queue.pushError(encode(fileOut{Type: "file-cancel", File: t.clientID, Reason: reason, Participant: p.who.ID}))
	if len(t.receivers) == 0 {
		t.from.queue.pushError(encode(fileOut{Type: "file-cancel", File: t.clientID, Reason: "no-receivers"}))
		r.files.end(t)
		return
	}
	r.progress(t) // the sender may have waited for p
}

// cancel ends t for everyone: the receivers and the sender are told. f.mu held.
func (r *dataRelay) cancel(t *fileTransfer, reason string) {
	for p := range t.receivers {
		p.queue.pushError(encode(fileOut{Type: "file-cancel", File: t.id, Reason: reason}))
	}
	t.from.queue.pushError(encode(fileOut{Type: "file-cancel", File: t.clientID, Reason: reason}))
	r.files.end(t)
}

// leave drops p from the transfers it receives and cancels those it sends:
// the others are not kept waiting for someone gone.
func (r *dataRelay) leave(p *dataPort) {
	f := &r.files
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.bySender[p] {
		for q := range t.receivers {
			q.queue.pushError(encode(fileOut{Type: "file-cancel", File: t.id, Reason: "left"}))
		}
		f.end(t)
	}
	for _, t := range f.byID {
		if _, ok := t.receivers[p]; ok {
			delete(t.receivers, p)
			t.from.queue.pushError(encode(fileOut{Type: "file-cancel", File: t.clientID, Reason: "left", Participant: p.who.ID}))
			if len(t.receivers) == 0 {
				t.from.queue.pushError(encode(fileOut{Type: "file-cancel", File: t.clientID, Reason: "no-receivers"}))
				f.end(t)
			} else {
				r.progress(t)
			}
		}
	}
}

// checkFile checks the fields of a file message (decodeData).
func checkFile(m *dataIn) *dataError {
	if m.File == "" || len(m.File) > maxIDLength {
		return badMessage("%s: want a file id of 1 to %d bytes", m.Type, maxIDLength)
	}
	switch m.Type {
	case "file-offer":
		if m.Name == nil || *m.Name == "" || len(*m.Name) > maxFileName || !utf8.ValidString(*m.Name) {
			return badMessage("file-offer: want a name of 1 to %d bytes", maxFileName)
		}
		if m.Size == nil || *m.Size < 0 {
			return badMessage("file-offer: want a size")
		}
		if len(m.Mime) > 255 {
			return badMessage("file-offer: mime too long")
		}
	case "file-chunk", "file-ack":
		if m.Seq == nil || *m.Seq < 0 {
			return badMessage("%s: want a seq", m.Type)
		}
	}
	return nil
}
