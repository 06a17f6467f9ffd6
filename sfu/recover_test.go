package sfu

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/rtc"
)

// events records what a participant is told; with panicOnOffer it panics
// where the participant's own negotiation goroutine calls it, as a bug in
// the server would.
type events struct {
	panicOnOffer bool
	left         chan ParticipantInfo
	closed       chan error
}

func newEvents(panicOnOffer bool) *events {
	return &events{panicOnOffer: panicOnOffer, left: make(chan ParticipantInfo, 8), closed: make(chan error, 1)}
}

func (e *events) OnJoined(JoinInfo)                              {}
func (e *events) OnParticipantJoined(ParticipantInfo)            {}
func (e *events) OnParticipantLeft(p ParticipantInfo)            { e.left <- p }
func (e *events) OnParticipantUpdated(ParticipantInfo)           {}
func (e *events) OnTrackPublished(TrackInfo)                     {}
func (e *events) OnTrackUnpublished(TrackInfo)                   {}
func (e *events) OnTrackUpdated(TrackInfo)                       {}
func (e *events) OnTrackMuted(TrackInfo)                         {}
func (e *events) OnMutedBy(webrtc.RTPCodecType, ParticipantInfo) {}
func (e *events) OnSpeakers([]SpeakerInfo)                       {}
func (e *events) OnStreamState(string, bool, string)             {}
func (e *events) OnPublishLayers(string, string, []string)       {}
func (e *events) OnAnswer(string)                                {}
func (e *events) OnCandidate(Peer, webrtc.ICECandidateInit)      {}
func (e *events) OnClosed(err error)                             { e.closed <- err }
func (e *events) OnOffer(string) {
	if e.panicOnOffer {
		panic("injected")
	}
}

// A panic in one participant's goroutine ends that participant with an
// error, counted; the others stay and the server takes new joins.
func TestPanicEndsOnlyItsParticipant(t *testing.T) {
	defer goleak.VerifyNone(t)
	api, err := rtc.NewAPI(rtc.Config{Loopback: true}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	rooms := NewRooms(api, zap.NewNop())
	defer rooms.Close()
	before := panics.Load()

	good := newEvents(false)
	if _, err := rooms.Join("r", "good", good); err != nil {
		t.Fatal(err)
	}
	bad := newEvents(true)
	victim, err := rooms.Join("r", "bad", bad)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-bad.closed:
		t.Logf("the panicking participant was closed: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the panicking participant was not closed")
	}
	select {
	case p := <-good.left:
		if p.ID != victim.Info().ID {
			t.Errorf("told %s left, want %s", p.ID, victim.Info().ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the others were not told the panicking participant left")
	}
	if n := panics.Load() - before; n != 1 {
		t.Errorf("switchboard_panics_total rose by %d, want 1", n)
	}
	third := newEvents(false)
	if _, err := rooms.Join("r", "third", third); err != nil {
		t.Fatalf("a join after the panic: %v", err)
	}
}
