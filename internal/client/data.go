package client

import (
	"encoding/json"
	"errors"
	"sync"

	"github.com/pion/webrtc/v4"
)

// Room data (docs/protocol.md, "Room data"): the server opens the data
// channels "data" and "data-lossy" on the subscriber connection; the
// client sends on them and receives the others' messages.

// DataMessage is a message received on the "data" channel: chat, app,
// or error.
type DataMessage struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	From struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"from"`
	TS          int64           `json:"ts"`
	Text        string          `json:"text"`
	Data        json.RawMessage `json:"data"`
	To          []string        `json:"to"`
	Code        string          `json:"code"`
	Message     string          `json:"message"`
	Participant string          `json:"participant"`
}

type dataState struct {
	once     sync.Once
	open     chan struct{}
	messages chan DataMessage
	mu       sync.Mutex
	reliable *webrtc.DataChannel
}

func (d *dataState) init() {
	d.once.Do(func() {
		d.open = make(chan struct{})
		d.messages = make(chan DataMessage, 1024)
	})
}

func (c *Client) onDataChannel(dc *webrtc.DataChannel) {
	if dc.Label() != "data" {
		return
	}
	d := &c.data
	d.init()
	dc.OnOpen(func() {
		d.mu.Lock()
		d.reliable = dc
		d.mu.Unlock()
		close(d.open)
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		var dm DataMessage
		if json.Unmarshal(m.Data, &dm) != nil {
			return
		}
		select {
		case d.messages <- dm:
		default: // a test that does not read loses them
		}
	})
}

// DataOpen is closed when the "data" channel is open.
func (c *Client) DataOpen() <-chan struct{} {
	c.data.init()
	return c.data.open
}

// DataMessages delivers what arrives on the "data" channel.
func (c *Client) DataMessages() <-chan DataMessage {
	c.data.init()
	return c.data.messages
}

// SendData sends v, as JSON text, on the "data" channel.
func (c *Client) SendData(v any) error {
	c.data.mu.Lock()
	dc := c.data.reliable
	c.data.mu.Unlock()
	if dc == nil {
		return errors.New("the data channel is not open")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return dc.SendText(string(b))
}
