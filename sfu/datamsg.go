package sfu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Room data (docs/protocol.md, "Room data"): what participants send each
// other over the data channels of their subscriber connections. This file
// is its messages: what a client may send, decoded and checked, and what
// the server relays, stamped with the sender.

// The labels of the two data channels the server opens on every
// subscriber connection.
const (
	DataLabel  = "data"       // reliable and ordered: chat and app messages
	LossyLabel = "data-lossy" // unordered, no retransmissions: ephemeral app data
)

// Bounds of a message's fields, whatever the size limit.
const (
	maxRecipients = 64
	maxIDLength   = 64
)

// Error codes a sender (or a receiver) gets over its data channel.
const (
	codeTooLarge    = "too-large"
	codeRateLimited = "rate-limited"
	codeBadMessage  = "bad-message"
	codeOverflow    = "overflow"
)

// dataIn is a client's message: {"type":"chat","text":...,"to":[...]} or
// {"type":"app","data":...,"to":[...]}. No "to": everyone else.
type dataIn struct {
	Type string          `json:"type"`
	Text *string         `json:"text"`
	Data json.RawMessage `json:"data"`
	To   *[]string       `json:"to"`
	// file-* (datafile.go)
	File string  `json:"file"`
	Name *string `json:"name"`
	Size *int64  `json:"size"`
	Mime string  `json:"mime"`
	Seq  *int64  `json:"seq"`
}

// dataOut is a message relayed to its receivers.
type dataOut struct {
	Type string          `json:"type"`
	ID   string          `json:"id"`
	From dataFrom        `json:"from"`
	TS   int64           `json:"ts"` // server time, ms since 1970
	Text string          `json:"text,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
	To   []string        `json:"to,omitempty"`
}

type dataFrom struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// dataError is sent back over the reliable channel. Ref is the id of the
// message concerned (when it has one); Participant the receiver it did not
// reach (overflow).
type dataError struct {
	Type        string `json:"type"` // "error"
	Code        string `json:"code"`
	Message     string `json:"message"`
	Ref         string `json:"ref,omitempty"`
	Participant string `json:"participant,omitempty"`
}

func (e *dataError) Error() string { return e.Code + ": " + e.Message }

func badMessage(format string, args ...any) *dataError {
	return &dataError{Type: "error", Code: codeBadMessage, Message: fmt.Sprintf(format, args...)}
}

// decodeData decodes and checks one client message; lossy says it came on
// the unreliable channel, which carries app messages only. The recipients
// come back without duplicates; nil means everyone.
func decodeData(b []byte, lossy bool) (dataIn, []string, *dataError) {
	var m dataIn
	if !utf8.Valid(b) {
		return m, nil, badMessage("not UTF-8 text")
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return m, nil, badMessage("want one JSON object")
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, nil, badMessage("invalid JSON: %v", err)
	}
	switch m.Type {
	case "chat":
		if lossy {
			return m, nil, badMessage("chat goes on the %q channel", DataLabel)
		}
		if m.Text == nil || strings.TrimSpace(*m.Text) == "" {
			return m, nil, badMessage("chat needs a text")
		}
	case "app":
		if len(m.Data) == 0 {
			return m, nil, badMessage("app needs data")
		}
	case "file-offer", "file-chunk", "file-end", "file-ack", "file-cancel":
		if lossy {
			return m, nil, badMessage("files go on the %q channel", DataLabel)
		}
		if err := checkFile(&m); err != nil {
			return m, nil, err
		}
		if m.Type != "file-offer" {
			return m, nil, nil // no recipients: the file's
		}
	case "":
		return m, nil, badMessage("no type")
	default:
		return m, nil, badMessage("unknown type %.40q", m.Type)
	}
	if m.To == nil {
		return m, nil, nil
	}
	to := *m.To
	if len(to) == 0 || len(to) > maxRecipients {
		return m, nil, badMessage("to: want 1 to %d participant ids", maxRecipients)
	}
	seen := make(map[string]bool, len(to))
	out := make([]string, 0, len(to))
	for _, id := range to {
		if id == "" || len(id) > maxIDLength {
			return m, nil, badMessage("to: %.70q is not a participant id", id)
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return m, out, nil
}
