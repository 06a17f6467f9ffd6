package sfu

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// DataLimits bound what one participant may send the room over its data
// channels. The zero value of a field means its default (see
// DefaultDataLimits), except MessagesPerSecond < 0: no rate limit.
type DataLimits struct {
	// MessageSize is the largest message in bytes.
	MessageSize int
	// MessagesPerSecond is how many messages one participant may send per
	// second, in bursts of as many.
	MessagesPerSecond int
	// QueueSize is how many bytes may wait for one receiver's reliable
	// channel; past it, that receiver misses the message and both it and
	// the sender are told (overflow).
	QueueSize int
	// FileSize is the largest file one may send (file-offer); < 0: none.
	FileSize int64
}

// DefaultDataLimits are the limits of a server that sets none.
func DefaultDataLimits() DataLimits {
	return DataLimits{MessageSize: 64 << 10, MessagesPerSecond: 50, QueueSize: 4 << 20, FileSize: 100 << 20}
}

func (l DataLimits) withDefaults() DataLimits {
	d := DefaultDataLimits()
	if l.MessageSize <= 0 {
		l.MessageSize = d.MessageSize
	}
	if l.MessagesPerSecond == 0 {
		l.MessagesPerSecond = d.MessagesPerSecond
	}
	if l.FileSize == 0 {
		l.FileSize = d.FileSize
	}
	if l.QueueSize <= 0 {
		l.QueueSize = d.QueueSize
	}
	return l
}

// lossyHighWater: an unreliable message is dropped for a receiver whose
// channel has this much waiting already.
const lossyHighWater = 256 << 10

// dataPort is one participant's end of the room's data: its reliable
// queue, its unreliable channel and its rate limit.
type dataPort struct {
	who     dataFrom
	queue   *dataQueue
	lossy   dataSink // nil: none
	limiter *rate.Limiter
}

func newDataPort(who dataFrom, l DataLimits, reliable, lossy dataSink) *dataPort {
	port := &dataPort{who: who, queue: newDataQueue(reliable, l.QueueSize), lossy: lossy}
	if l.MessagesPerSecond > 0 {
		port.limiter = rate.NewLimiter(rate.Limit(l.MessagesPerSecond), l.MessagesPerSecond)
	}
	return port
}

// fail sends an error to this participant.
func (p *dataPort) fail(e *dataError) {
	e.Type = "error"
	b, _ := json.Marshal(e) // plain strings: cannot fail
	p.queue.pushError(b)
}

func (p *dataPort) sendLossy(b []byte) {
	if p.lossy != nil && p.lossy.BufferedAmount() < lossyHighWater {
		_ = p.lossy.SendText(string(b)) // unreliable by design
	}
}

// dataRelay passes a room's data messages between its participants and
// keeps its chat history.
type dataRelay struct {
	limits  DataLimits
	peers   func() []*dataPort // everyone in the room now
	history chatLog
	files   files
	now     func() time.Time
	// In a cluster: remote says whether id is a participant of the room on
	// another node; out, when set, carries a message to the other nodes.
	remote func(id string) bool
	out    func(m RoomData)
}

// RoomData is a data message of a room on its way to the room's other
// nodes: the encoded message as receivers get it, its recipients (nil:
// everyone), whether it goes over the lossy channel, whether it is chat
// for everyone (kept in the history).
type RoomData struct {
	Message json.RawMessage `json:"message"`
	To      []string        `json:"to,omitempty"`
	Lossy   bool            `json:"lossy,omitempty"`
	Chat    bool            `json:"chat,omitempty"`
}

func newDataRelay(l DataLimits, peers func() []*dataPort) *dataRelay {
	return &dataRelay{limits: l.withDefaults(), peers: peers, now: time.Now}
}

// receive handles one message from a participant: checked, stamped with
// its sender, and queued to its receivers (and, for chat, echoed to the
// sender with its id and time). It never waits for anyone.
func (r *dataRelay) receive(from *dataPort, b []byte, text, lossy bool) {
	if len(b) > maxChannelMessage {
		from.fail(&dataError{Code: codeTooLarge, Message: fmt.Sprintf("message of %d bytes; the limit is %d", len(b), r.limits.MessageSize)})
		return
	}
	var in dataIn
	var to []string
	var derr *dataError
	if text {
		in, to, derr = decodeData(b, lossy)
	}
	// The chunks of an offered file and their acknowledgements are not
	// counted against data.messages-per-second: at 50 messages of 16 KiB a
	// second a file would crawl at 800 KB/s. Their volume has its own
	// bounds: a chunk belongs to an offered file, in order, and no more
	// bytes than offered (at most data.file-size), with at most
	// filesPerSender files open; the offers are counted as messages. A
	// chunk of no open file is dropped unanswered (it may have been on its
	// way when the file was cancelled).
	bulk := derr == nil && (in.Type == "file-chunk" || in.Type == "file-ack")
	if !bulk && from.limiter != nil && !from.limiter.Allow() {
		from.fail(&dataError{Code: codeRateLimited, Message: fmt.Sprintf("more than %d messages per second; this one was dropped", r.limits.MessagesPerSecond)})
		return
	}
	// A chunk may use the whole of a channel message (16 KiB in base64 and
	// its fields fit), whatever data.message-size.
	if in.Type != "file-chunk" && len(b) > r.limits.MessageSize {
		from.fail(&dataError{Code: codeTooLarge, Message: fmt.Sprintf("message of %d bytes; the limit is %d", len(b), r.limits.MessageSize)})
		return
	}
	if !text {
		from.fail(badMessage("binary messages are not understood; send JSON text"))
		return
	}
	if derr != nil {
		from.fail(derr)
		return
	}
	if strings.HasPrefix(in.Type, "file-") {
		r.receiveFile(from, in, to)
		return
	}
	out := dataOut{Type: in.Type, ID: randomID(), From: from.who, TS: r.now().UnixMilli(), Data: in.Data, To: to}
	if in.Text != nil {
		out.Text = *in.Text
	}
	enc, err := json.Marshal(out)
	if err != nil { // data is valid JSON, checked by Unmarshal
		from.fail(badMessage("data: %v", err))
		return
	}
	targets := r.targets(from, to)
	elsewhere := r.elsewhere(to)
	if to != nil && len(targets) == 0 && !elsewhere {
		from.fail(&dataError{Code: codeBadMessage, Message: "none of the recipients is in the room", Ref: out.ID})
		return
	}
	if elsewhere && r.out != nil {
		r.out(RoomData{Message: enc, To: to, Lossy: lossy, Chat: in.Type == "chat" && to == nil})
	}
	if lossy {
		for _, t := range targets {
			t.sendLossy(enc)
		}
		return
	}
	if in.Type == "chat" {
		if to == nil {
			r.history.add(enc)
		}
		targets = append(targets, from) // the sender's copy, with id and time
	}
	r.deliver(enc, out.ID, from, targets)
}

// elsewhere says whether a message to ids (nil: everyone) has recipients
// on other nodes; always for everyone, as the other nodes decide.
func (r *dataRelay) elsewhere(ids []string) bool {
	if r.remote == nil {
		return false
	}
	if ids == nil {
		return true
	}
	for _, id := range ids {
		if r.remote(id) {
			return true
		}
	}
	return false
}

// receiveRemote delivers a message from a participant on another node to
// its recipients here.
func (r *dataRelay) receiveRemote(m RoomData) {
	targets := r.targets(nil, m.To)
	if m.Lossy {
		for _, t := range targets {
			t.sendLossy(m.Message)
		}
		return
	}
	if m.Chat {
		r.history.add(m.Message)
	}
	r.deliver(m.Message, "", nil, targets)
}

// deliver queues enc (message id) to targets; a receiver too slow for it
// is told, and so is from (nil for the server) unless it is that receiver.
func (r *dataRelay) deliver(enc []byte, id string, from *dataPort, targets []*dataPort) {
	for _, t := range targets {
		if t.queue.push(enc) {
			continue
		}
		t.fail(&dataError{Code: codeOverflow, Message: "you receive too slowly: a message to you was dropped", Ref: id})
		if from != nil && t != from {
			from.fail(&dataError{Code: codeOverflow, Message: t.who.Name + " receives too slowly: they did not get this message",
				Ref: id, Participant: t.who.ID})
		}
	}
}

// serverFrom is the sender of the server's own chat messages (Rooms.SendData).
var serverFrom = dataFrom{ID: ServerModerator.ID, Name: ServerModerator.Name}

// announce sends text to the whole room as a chat message from the server,
// kept in the room's history like the participants' chat.
func (r *dataRelay) announce(text string) error {
	if text == "" {
		return ErrEmptyData
	}
	out := dataOut{Type: "chat", ID: randomID(), From: serverFrom, TS: r.now().UnixMilli(), Text: text}
	enc, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if len(enc) > r.limits.MessageSize {
		return fmt.Errorf("%w: %d bytes; the limit is %d", ErrDataTooLarge, len(enc), r.limits.MessageSize)
	}
	r.history.add(enc)
	r.deliver(enc, out.ID, nil, r.targets(nil, nil))
	return nil
}

// targets are the participants a message to ids (nil: everyone) reaches,
// the sender left out.
func (r *dataRelay) targets(from *dataPort, ids []string) []*dataPort {
	var want map[string]bool
	if ids != nil {
		want = make(map[string]bool, len(ids))
		for _, id := range ids {
			want[id] = true
		}
	}
	var out []*dataPort
	for _, p := range r.peers() {
		if p != from && (want == nil || want[p.who.ID]) {
			out = append(out, p)
		}
	}
	return out
}
