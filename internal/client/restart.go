package client

import (
	"fmt"
	"net"

	"github.com/pion/webrtc/v4"
)

// IPFilter gathers ICE candidates only on the addresses allow accepts when
// gathering: a test moves a client to another address by changing what
// allow accepts and restarting ICE.
func IPFilter(allow func(net.IP) bool) APIOption {
	return func(c *apiConfig) { c.se.SetIPFilter(allow) }
}

// RestartICE restarts ICE on both connections, as a browser does after a
// network change: a publisher offer with new credentials, and a
// restart-ice request for the subscriber connection, which the server
// offers.
func (c *Client) RestartICE() error {
	offer, err := c.pub.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return err
	}
	if err := c.pub.SetLocalDescription(offer); err != nil {
		return err
	}
	if err := c.Send(Message{Type: "offer", Target: "publisher", SDP: offer.SDP}); err != nil {
		return err
	}
	return c.Send(Message{Type: "restart-ice", Target: "subscriber"})
}

// Mute tells the server that this client muted (or unmuted) what it
// publishes of kind ("audio" or "video"), as the web client does when its
// user mutes the microphone or turns the camera off. The synthetic media
// keeps flowing: the server is what must stop forwarding it.
func (c *Client) Mute(kind string, muted bool) error {
	for _, tr := range c.pub.GetTransceivers() {
		if tr.Kind().String() == kind && tr.Mid() != "" {
			return c.SendRaw([]byte(fmt.Sprintf(`{"type":"mute","mid":%q,"muted":%t}`, tr.Mid(), muted)))
		}
	}
	return fmt.Errorf("no %s transceiver", kind)
}
