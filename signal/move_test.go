package signal_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pionclient "github.com/switchboard-sfu/switchboard/internal/client"
	"github.com/switchboard-sfu/switchboard/internal/netlab"
)

// A client that moves to another address mid-call (a laptop from Wi-Fi to
// a cable, a phone to mobile data) keeps its call through an ICE restart,
// without a rejoin: its old address goes dead, it gathers on the new one,
// and media flows both ways again.
func TestMoveToNewAddress(t *testing.T) {
	// Known to fail in about one run of three since late in stop 9: the
	// moved Pion client's subscriber connection stays dead through repeated
	// ICE restarts while its publisher recovers; Chromium moved the same
	// way recovers every time (cmd/sfu TestBrowserNewAddress). Run it with
	// SWITCHBOARD_TEST_MOVE=1 until that is understood.
	if os.Getenv("SWITCHBOARD_TEST_MOVE") != "1" {
		t.Skip("flaky (see the comment); SWITCHBOARD_TEST_MOVE=1 runs it")
	}
	// Two links give this namespace two more addresses of its own: the
	// mover starts on the first and moves to the second; the other
	// participant stays on loopback.
	first, second := netlab.New(t), netlab.New(t)
	s := newServerWith(t, withGrace(10*time.Second))

	var at atomic.Value
	at.Store(first.HostIP)
	mover := joinPion(t, s, "Mover", pionclient.IPFilter(func(ip net.IP) bool { return ip.String() == at.Load().(string) }))
	other := joinPion(t, s, "Other", pionclient.LoopbackOnly())

	receiving(t, mover, other.ID, "the mover, before the move")
	receiving(t, other, mover.ID, "the other, before the move")

	// The old address goes dead: nothing to or from it arrives any more.
	for _, rule := range [][]string{{"INPUT", "-p", "udp", "-s", first.HostIP, "-j", "DROP"}, {"INPUT", "-p", "udp", "-d", first.HostIP, "-j", "DROP"}} {
		iptables(t, append([]string{"-A"}, rule...)...)
		t.Cleanup(func() { iptables(t, append([]string{"-D"}, rule...)...) })
	}
	at.Store(second.HostIP)
	moved := time.Now()
	// As the web client does, the mover restarts ICE again while its media
	// has not come back, every 5 s: a restart can race the server's own.
	restarts := 0
	restart := func() {
		restarts++
		if err := mover.RestartICE(); err != nil {
			t.Fatal(err)
		}
	}
	restart()
	for !flowing(mover, other.ID, 5*time.Second) || !flowing(other, mover.ID, time.Second) {
		if time.Since(moved) > 20*time.Second {
			for len(mover.Messages) > 0 {
				t.Logf("mover got %+v", <-mover.Messages)
			}
			t.Fatalf("no media both ways 20 s after the move, %d ICE restarts; mover receives: %v, other receives: %v",
				restarts, flowing(mover, other.ID, time.Second), flowing(other, mover.ID, time.Second))
		}
		restart()
	}
	receiving(t, mover, other.ID, "the mover, after the move")
	receiving(t, other, mover.ID, "the other, after the move")
	t.Logf("media both ways again %.2f s after the move, after %d ICE restart(s)", time.Since(moved).Seconds(), restarts)
	select {
	case <-mover.Gone():
		t.Fatal("the mover's signaling connection ended: it had to rejoin")
	default:
	}
}

func joinPion(t *testing.T, s *server, name string, opts ...pionclient.APIOption) *pionclient.Client {
	t.Helper()
	api, err := pionclient.NewAPI(opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pionclient.Join(ctx, api, s.url, "r", name, pionclient.Options{Publish: true, VideoBitrate: 200_000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// receiving waits until c has received more video and audio packets from
// participant than it had when called, twice over 200 ms apart, so that
// media flows now, not just at some point.
func receiving(t *testing.T, c *pionclient.Client, participant, who string) {
	t.Helper()
	counts := func() (video, audio int64) {
		video, _ = received(c, participant, "video")
		audio, _ = received(c, participant, "audio")
		return video, audio
	}
	deadline := time.Now().Add(15 * time.Second)
	v0, a0 := counts()
	for rounds := 0; rounds < 2; {
		time.Sleep(200 * time.Millisecond) // polling interval, not synchronization
		v, a := counts()
		if v > v0 && a > a0 {
			rounds++
		} else {
			rounds = 0
		}
		v0, a0 = v, a
		if time.Now().After(deadline) {
			t.Fatalf("%s: no media from %s for 15 s (video %d, audio %d packets so far)", who, participant, v, a)
		}
	}
}

// flowing reports whether c receives video and audio from participant
// within d.
func flowing(c *pionclient.Client, participant string, d time.Duration) bool {
	counts := func() (video, audio int64) {
		video, _ = received(c, participant, "video")
		audio, _ = received(c, participant, "audio")
		return video, audio
	}
	v0, a0 := counts()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronization
		if v, a := counts(); v > v0 && a > a0 {
			return true
		}
	}
	return false
}

func iptables(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
		t.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
