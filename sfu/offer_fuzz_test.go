package sfu

import (
	"errors"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/rtc"
)

// browserOffer is a publisher offer as a browser makes it: audio, and video
// with three simulcast layers, a screen share, and the extensions.
const browserOffer = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
	"a=group:BUNDLE 0 1 2\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS s\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n" +
	"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n" +
	"a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n" +
	"a=setup:actpass\r\na=mid:0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n" +
	"a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n" +
	"a=sendonly\r\na=msid:s a\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\n" +
	"a=fmtp:111 minptime=10;useinbandfec=1\r\na=ssrc:1111 cname:c\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n" +
	"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n" +
	"a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n" +
	"a=setup:actpass\r\na=mid:1\r\na=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n" +
	"a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n" +
	"a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n" +
	"a=sendonly\r\na=msid:s v\r\na=rtcp-mux\r\na=rtcp-rsize\r\na=rtpmap:96 VP8/90000\r\n" +
	"a=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 transport-cc\r\na=rtcp-fb:96 ccm fir\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n" +
	"a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n" +
	"a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;f\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n" +
	"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n" +
	"a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n" +
	"a=setup:actpass\r\na=mid:2\r\na=sendonly\r\na=msid:s w\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\na=ssrc:3333 cname:c\r\n"

// FuzzHandleOffer feeds publisher offers to a participant as the signaling
// layer does: whatever the SDP and the declared sources, the server answers
// or returns ErrBadSDP, never panics, and an answer it gives is valid SDP.
func FuzzHandleOffer(f *testing.F) {
	f.Add(browserOffer, "1", "camera")
	f.Add(browserOffer, "2", "screen")
	f.Add(strings.Replace(browserOffer, "a=simulcast:send q;h;f", "a=simulcast:send q;;h;f;~x", 1), "1", "camera")
	f.Add(strings.Replace(browserOffer, "a=rid:h send", "a=rid:"+strings.Repeat("h", 300)+" send", 1), "1", "camera")
	f.Add(strings.Replace(browserOffer, "a=mid:1", "a=mid:0", 1), "0", "microphone")
	f.Add(strings.Replace(browserOffer, "a=setup:actpass", "a=setup:holdconn", -1), "", "")
	f.Add(browserOffer[:len(browserOffer)/2], "1", "camera")
	f.Add("v=0\r\n", "x", "y")
	api, err := rtc.NewAPI(rtc.Config{Loopback: true}, zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	rooms := NewRooms(api, zap.NewNop())
	f.Cleanup(rooms.Close)
	f.Fuzz(func(t *testing.T, sdp, mid, source string) {
		ev := &answers{}
		p, err := rooms.Join("fuzz", "f", ev)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Leave()
		err = p.HandleOffer(sdp, map[string]string{mid: source})
		if err != nil {
			if sdp == browserOffer {
				t.Fatalf("a browser's offer refused: %v", err)
			}
			if !errors.Is(err, ErrBadSDP) {
				t.Fatalf("HandleOffer: %v, want nil or ErrBadSDP", err)
			}
			return
		}
		var parsed webrtc.SessionDescription
		parsed.Type, parsed.SDP = webrtc.SDPTypeAnswer, ev.answer
		if _, err := parsed.Unmarshal(); err != nil {
			t.Fatalf("the server's answer does not parse: %v\n%s", err, ev.answer)
		}
		if sdp == browserOffer && strings.Count(ev.answer, "m=") != 3 {
			t.Fatalf("the answer to a browser's offer has %d media sections, want 3", strings.Count(ev.answer, "m="))
		}
	})
}

// answers keeps the publisher answer a participant is sent.
type answers struct {
	events
	answer string
}

func (a *answers) OnAnswer(sdp string)               { a.answer = sdp }
func (a *answers) OnParticipantLeft(ParticipantInfo) {}
func (a *answers) OnClosed(error)                    {}
