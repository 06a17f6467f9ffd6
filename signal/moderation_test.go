package signal_test

import (
	"context"
	"testing"
	"time"

	pionclient "github.com/switchboard-sfu/switchboard/internal/client"
	"github.com/switchboard-sfu/switchboard/signal"
)

// Moderation: only a participant with the admin right mutes, removes, or
// ends the room; each is told what happened to it.
func TestModeration(t *testing.T) {
	auth, configure := withAuth(t)
	s := newServerWith(t, configure)
	grant := func(id string, admin bool) string {
		return mint(t, auth, signal.Grant{Identity: id, Name: id, Room: "r", Publish: true, Subscribe: true, Admin: admin}, time.Hour)
	}
	host := s.dial(t)
	host.joinWith("r", "x", grant("host", true))
	jh := host.expect(signal.TypeJoined)
	if jh.You == nil || !jh.You.Admin {
		t.Fatalf("the host's joined does not say it may moderate: %s", jh.raw)
	}
	api, err := pionclient.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bob, err := pionclient.Join(ctx, api, s.url, "r", "bob", pionclient.Options{Publish: true, VideoBitrate: 200_000, Token: grant("bob", false)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bob.Close)
	carol := s.dial(t)
	carol.joinWith("r", "x", grant("carol", false))
	jc := carol.expect(signal.TypeJoined)
	if jc.You.Admin {
		t.Errorf("carol, without the right, is told she may moderate")
	}
	// Bob's microphone is published before the host mutes it.
	for {
		m := host.expect(signal.TypeTrackPublished, signal.TypeParticipantJoined)
		if m.Type == signal.TypeTrackPublished && containsKind(m, "audio") {
			break
		}
	}

	// Without the right: refused, nothing happens.
	carol.sendJSON(map[string]string{"type": "moderate", "action": "remove", "participant": bob.ID})
	carol.expectError(signal.CodeForbidden, signal.TypeParticipantJoined, signal.TypeTrackPublished)

	host.sendJSON(map[string]string{"type": "moderate", "action": "mute", "participant": bob.ID, "kind": "audio"})
	if _, err := waitForAny(ctx, bob, signal.TypeMuted); err != nil {
		t.Fatalf("bob was not told he was muted: %v", err)
	}
	if m := carol.expect(signal.TypeTrackMuted, signal.TypeTrackPublished); !containsKind(m, "audio") {
		t.Errorf("track-muted %s, want bob's microphone", m.raw)
	}

	host.sendJSON(map[string]string{"type": "moderate", "action": "remove", "participant": "nobody"})
	host.expectError(signal.CodeNoParticipant, signal.TypeTrackPublished, signal.TypeTrackMuted)

	host.sendJSON(map[string]string{"type": "moderate", "action": "remove", "participant": jc.You.ID, "reason": "spam"})
	if e := carol.expectError(signal.CodeRemoved, signal.TypeTrackPublished, signal.TypeTrackMuted); e.Message == "" {
		t.Error("the removed participant was not told why")
	}
	carol.expectClose(signal.StatusRemoved)
	host.expectLeft(jc.You.ID)

	host.sendJSON(map[string]string{"type": "moderate", "action": "end-room", "reason": "done"})
	host.expectError(signal.CodeRoomEnded, signal.TypeTrackPublished, signal.TypeTrackMuted, signal.TypeParticipantLeft, signal.TypeTrackUnpublished)
	host.expectClose(signal.StatusRoomEnded)
	if m, err := waitForAny(ctx, bob, signal.TypeError); err != nil || m.Code != signal.CodeRoomEnded {
		t.Errorf("bob at the end of the room: %+v, %v", m, err)
	}
}

func containsKind(m msg, kind string) bool {
	return m.Track != nil && m.Track.Kind == kind
}
