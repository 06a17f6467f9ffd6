package trunk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/switchboard-sfu/switchboard/internal/poll"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
	os.Exit(0)
}

// lossyConn drops the outgoing packets drop picks, and can record them.
type lossyConn struct {
	*net.UDPConn
	drop atomic.Pointer[func(b []byte) bool]
}

func (c *lossyConn) WriteToAddrPort(b []byte, a netip.AddrPort) (int, error) {
	if f := c.drop.Load(); f != nil && (*f)(b) {
		return len(b), nil
	}
	return c.UDPConn.WriteToUDPAddrPort(b, a)
}

func (c *lossyConn) setDrop(f func(b []byte) bool) { c.drop.Store(&f) }

func listenTest(t testing.TB, id string) (*Endpoint, *lossyConn) {
	t.Helper()
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c := &lossyConn{UDPConn: uc}
	var e *Endpoint
	if tt, ok := t.(*testing.T); ok {
		e, err = newEndpoint(id, c, zaptest.NewLogger(tt))
	} else {
		e, err = newEndpoint(id, c, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, c
}

func connect(t testing.TB, a, b *Endpoint) (ab, ba *Peer) {
	t.Helper()
	ab, err := a.Connect(b.ID(), b.Addr(), b.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	ba, err = b.Connect(a.ID(), a.Addr(), a.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return ab, ba
}

// sender writes numbered packets of one stream and keeps them to resend.
type sender struct {
	mu    sync.Mutex
	cache map[uint32]map[uint16]rtp.Packet
}

func newSender() *sender { return &sender{cache: map[uint32]map[uint16]rtp.Packet{}} }

// send writes a packet whose payload names trunk SSRC and sequence number;
// the origin header carries another SSRC, as a relayed packet does.
func (s *sender) send(t testing.TB, p *Peer, ssrc uint32, seq uint16, ext bool) {
	t.Helper()
	payload := make([]byte, 100+int(seq)%300)
	binary.BigEndian.PutUint32(payload, ssrc)
	binary.BigEndian.PutUint16(payload[4:], seq)
	h := rtp.Header{
		Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 3000,
		SSRC: 0xdeadbeef, Marker: seq%5 == 0,
	}
	if ext {
		if err := h.SetExtension(3, []byte{byte(seq), 1, 2}); err != nil {
			t.Fatal(err)
		}
	}
	if seq%7 == 0 {
		h.Padding, h.PaddingSize = true, 4
	}
	s.mu.Lock()
	if s.cache[ssrc] == nil {
		s.cache[ssrc] = map[uint16]rtp.Packet{}
	}
	s.cache[ssrc][seq] = rtp.Packet{Header: h, Payload: payload}
	s.mu.Unlock()
	if err := p.WriteRTP(ssrc, &h, payload); err != nil {
		t.Error(err)
	}
}

func (s *sender) resend(p *Peer, ssrc uint32, seqs []uint16) {
	for _, seq := range seqs {
		s.mu.Lock()
		pkt, ok := s.cache[ssrc][seq]
		s.mu.Unlock()
		if ok {
			p.WriteRTP(ssrc, &pkt.Header, pkt.Payload)
		}
	}
}

// check reports a received packet that is not the one sent.
func (s *sender) check(t *testing.T, ssrc uint32, b []byte) (seq uint16) {
	t.Helper()
	var got rtp.Packet
	if err := got.Unmarshal(b); err != nil {
		t.Fatalf("ssrc %d: %v", ssrc, err)
	}
	s.mu.Lock()
	want, ok := s.cache[ssrc][got.SequenceNumber]
	s.mu.Unlock()
	switch {
	case !ok:
		t.Errorf("ssrc %d: seq %d was never sent", ssrc, got.SequenceNumber)
	case got.SSRC != ssrc:
		t.Errorf("SSRC %#x, want the trunk SSRC %d", got.SSRC, ssrc)
	case got.Timestamp != want.Timestamp || got.Marker != want.Marker || got.PayloadType != want.PayloadType:
		t.Errorf("ssrc %d seq %d: header %v, want %v", ssrc, got.SequenceNumber, got.Header, want.Header)
	case !bytes.Equal(got.GetExtension(3), want.GetExtension(3)):
		t.Errorf("ssrc %d seq %d: extension %x, want %x", ssrc, got.SequenceNumber, got.GetExtension(3), want.GetExtension(3))
	case got.Header.PaddingSize != want.Header.PaddingSize:
		t.Errorf("ssrc %d seq %d: padding %d, want %d", ssrc, got.SequenceNumber, got.Header.PaddingSize, want.Header.PaddingSize)
	case !bytes.Equal(got.Payload, want.Payload):
		t.Errorf("ssrc %d seq %d: payload differs", ssrc, got.SequenceNumber)
	}
	return got.SequenceNumber
}

// receive reads n distinct packets from s, checking each, within 5 s.
func receive(t *testing.T, snd *sender, s *Stream, n int) {
	t.Helper()
	seen := map[uint16]bool{}
	buf := make([]byte, 1500)
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(seen) < n {
		k, _, err := s.Read(buf)
		if err != nil {
			t.Fatalf("ssrc %d: %v after %d of %d packets", s.SSRC(), err, len(seen), n)
		}
		seen[snd.check(t, uint32(s.SSRC()), buf[:k])] = true
	}
}

func TestStreamsBothWaysArriveIntact(t *testing.T) {
	a, _ := listenTest(t, "a")
	b, _ := listenTest(t, "b")
	ab, ba := connect(t, a, b)
	sa, sb := newSender(), newSender()
	// The kernel may drop a burst on loopback; NACKs then repair it.
	a.OnNACK(func(_ string, ssrc uint32, seqs []uint16) { sa.resend(ab, ssrc, seqs) })
	b.OnNACK(func(_ string, ssrc uint32, seqs []uint16) { sb.resend(ba, ssrc, seqs) })

	const n = 300
	aToB := []uint32{1001, 1002, 1003}
	bToA := []uint32{2001, 2002}
	var wg sync.WaitGroup
	for _, ssrc := range aToB {
		s := ba.Stream(ssrc, "r")
		wg.Go(func() { receive(t, sa, s, n) })
	}
	for _, ssrc := range bToA {
		s := ab.Stream(ssrc, "")
		wg.Go(func() { receive(t, sb, s, n) })
	}
	for i := range n {
		seq := uint16(65500 + i) // across the wrap
		for _, ssrc := range aToB {
			sa.send(t, ab, ssrc, seq, ssrc == 1002)
		}
		for _, ssrc := range bToA {
			sb.send(t, ba, ssrc, seq, ssrc == 2001)
		}
		if i%20 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	wg.Wait()

	st := ab.Stats()
	if st.PacketsSent < n*uint64(len(aToB)) || st.PacketsReceived < n*uint64(len(bToA)) {
		t.Errorf("a's stats %+v: want at least %d sent and %d received", st, n*len(aToB), n*len(bToA))
	}
	if st.BytesSent == 0 || st.BytesReceived == 0 {
		t.Errorf("a's stats %+v: no bytes counted", st)
	}
	// Not UnknownSource: a's first sender report may beat b's Connect.
	if es := b.Stats(); es.AuthFailed+es.Malformed != 0 {
		t.Errorf("b dropped packets: %+v", es)
	}
	if got := ba.Stream(1001, "r"); got.RID() != "r" || got.SSRC() != 1001 {
		t.Errorf("stream %d %q", got.SSRC(), got.RID())
	}
}

func TestOtherKeyCannotInject(t *testing.T) {
	a, _ := listenTest(t, "a")
	b, _ := listenTest(t, "b")
	connect(t, a, b)
	var keyframes atomic.Int32
	b.OnKeyframeRequest(func(string, uint32) { keyframes.Add(1) })
	s := b.Peer("a").Stream(1, "")

	// An impostor with a's id, and b made to believe a is at its address.
	m, _ := listenTest(t, "a")
	if _, err := b.Connect("a", m.Addr(), a.PublicKey()); err != nil {
		t.Fatal(err)
	}
	// The real a's sender reports would now come from an address b does
	// not know, as the stranger's packet below does.
	a.Close()
	mb, err := m.Connect("b", b.Addr(), b.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	snd := newSender()
	for seq := range uint16(10) {
		snd.send(t, mb, 1, seq, false)
	}
	mb.RequestKeyframe(1)
	// At least: the impostor's sender reports fail too.
	poll.Until(t, 5*time.Second, "11 packets failing authentication", func() bool { return b.Stats().AuthFailed >= 11 })

	// A stranger b knows nothing of.
	x, _ := listenTest(t, "x")
	xb, err := x.Connect("b", b.Addr(), b.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	unknown := b.Stats().UnknownSource
	snd.send(t, xb, 1, 100, false)
	poll.Until(t, 5*time.Second, "the stranger's packet", func() bool { return b.Stats().UnknownSource > unknown })

	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _, err := s.Read(make([]byte, 1500)); err == nil {
		t.Errorf("an injected packet of %d bytes was delivered", n)
	}
	if keyframes.Load() != 0 {
		t.Error("an injected PLI reached OnKeyframeRequest")
	}
	if st := b.Peer("a").Stats(); st.PacketsReceived != 0 {
		t.Errorf("injected packets counted as received: %+v", st)
	}
}

func TestReplayIsRefused(t *testing.T) {
	a, ac := listenTest(t, "a")
	b, _ := listenTest(t, "b")
	ab, ba := connect(t, a, b)
	var wire [][]byte
	var mu sync.Mutex
	ac.setDrop(func(pkt []byte) bool {
		if !isRTCP(pkt) {
			mu.Lock()
			wire = append(wire, bytes.Clone(pkt))
			mu.Unlock()
		}
		return false
	})
	s := ba.Stream(5, "")
	snd := newSender()
	for seq := range uint16(3) {
		snd.send(t, ab, 5, seq, false)
	}
	receive(t, snd, s, 3)
	mu.Lock()
	for _, pkt := range wire {
		ac.UDPConn.WriteToUDPAddrPort(pkt, b.Addr().AddrPort())
	}
	mu.Unlock()
	poll.Until(t, 5*time.Second, "3 replays refused", func() bool { return b.Stats().Replayed == 3 })
	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := s.Read(make([]byte, 1500)); err == nil {
		t.Error("a replayed packet was delivered")
	}
}

// rtpSeq picks the plain RTP header fields of an SRTP packet on the wire.
func rtpSeq(pkt []byte) (ssrc uint32, seq uint16, ok bool) {
	if isRTCP(pkt) || len(pkt) < 12 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(pkt[8:]), binary.BigEndian.Uint16(pkt[2:]), true
}

func TestLostPacketIsNACKedAndResent(t *testing.T) {
	a, ac := listenTest(t, "a")
	b, _ := listenTest(t, "b")
	ab, ba := connect(t, a, b)
	var dropped atomic.Bool
	ac.setDrop(func(pkt []byte) bool {
		ssrc, seq, ok := rtpSeq(pkt)
		return ok && ssrc == 7 && seq == 105 && dropped.CompareAndSwap(false, true)
	})
	snd := newSender()
	var asked []uint16
	var mu sync.Mutex
	a.OnNACK(func(peer string, ssrc uint32, seqs []uint16) {
		if peer != "b" || ssrc != 7 {
			t.Errorf("NACK from %s for %d", peer, ssrc)
		}
		mu.Lock()
		asked = append(asked, seqs...)
		mu.Unlock()
		snd.resend(ab, ssrc, seqs)
	})
	s := ba.Stream(7, "q")
	for seq := uint16(100); seq < 120; seq++ {
		snd.send(t, ab, 7, seq, false)
	}
	receive(t, snd, s, 20)
	mu.Lock()
	if len(asked) == 0 || asked[0] != 105 {
		t.Errorf("NACKed %v, want 105", asked)
	}
	mu.Unlock()
	st := ba.Stats()
	if st.NACKsSent == 0 || st.PacketsRecovered != 1 || st.PacketsLost != 0 {
		t.Errorf("b's stats %+v: want a NACK sent, 1 recovered, none lost", st)
	}
	if ab.Stats().NACKsReceived == 0 {
		t.Error("a counted no NACK received")
	}
}

func TestUnrepairedLossIsNACKedTenTimesThenLost(t *testing.T) {
	a, ac := listenTest(t, "a")
	b, _ := listenTest(t, "b")
	ab, ba := connect(t, a, b)
	ac.setDrop(func(pkt []byte) bool {
		ssrc, seq, ok := rtpSeq(pkt)
		return ok && ssrc == 7 && seq == 3
	})
	var asked atomic.Int32
	a.OnNACK(func(_ string, _ uint32, seqs []uint16) {
		for _, seq := range seqs {
			if seq == 3 {
				asked.Add(1)
			}
		}
	})
	s := ba.Stream(7, "")
	snd := newSender()
	for seq := range uint16(6) {
		snd.send(t, ab, 7, seq, false)
	}
	receive(t, snd, s, 5)
	poll.Until(t, 5*time.Second, "the packet given up on", func() bool { return ba.Stats().PacketsLost == 1 })
	if n := asked.Load(); n != nackTries {
		t.Errorf("seq 3 NACKed %d times, want %d", n, nackTries)
	}
}

func TestPLIReachesSender(t *testing.T) {
	a, _ := listenTest(t, "a")
	b, _ := listenTest(t, "b")
	_, ba := connect(t, a, b)
	got := make(chan [2]any, 2)
	a.OnKeyframeRequest(func(peer string, ssrc uint32) { got <- [2]any{peer, ssrc} })
	if err := ba.RequestKeyframe(42); err != nil {
		t.Fatal(err)
	}
	if err := ba.WriteRTCP([]rtcp.Packet{&rtcp.FullIntraRequest{FIR: []rtcp.FIREntry{{SSRC: 43}}}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][2]any{{"b", uint32(42)}, {"b", uint32(43)}} {
		select {
		case g := <-got:
			if g != want {
				t.Errorf("keyframe request %v, want %v", g, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no keyframe request")
		}
	}
}

func TestRTTIsMeasured(t *testing.T) {
	a, _ := listenTest(t, "a")
	b, _ := listenTest(t, "b")
	// b first, so that a's first sender report, sent on the next tick, is
	// not dropped by a b that does not know a yet.
	ba, err := b.Connect("a", a.Addr(), a.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	ab, err := a.Connect("b", b.Addr(), b.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "RTT at both ends", func() bool { return ab.Stats().RTT > 0 && ba.Stats().RTT > 0 })
	for _, p := range []*Peer{ab, ba} {
		if rtt := p.Stats().RTT; rtt >= 100*time.Millisecond {
			t.Errorf("RTT on loopback %v", rtt)
		} else {
			t.Logf("RTT %s: %v", p.ID(), rtt)
		}
	}
}

func TestDisconnectEndsStreams(t *testing.T) {
	a, _ := listenTest(t, "a")
	b, _ := listenTest(t, "b")
	ab, ba := connect(t, a, b)
	s1, s2 := ba.Stream(1, ""), ba.Stream(2, "")
	snd := newSender()
	snd.send(t, ab, 1, 0, false)
	receive(t, snd, s1, 1)

	done := make(chan error, 2)
	for _, s := range []*Stream{s1, s2} {
		go func() {
			_, _, err := s.Read(make([]byte, 1500))
			done <- err
		}()
	}
	b.Disconnect("a")
	for range 2 {
		if err := <-done; !errors.Is(err, io.EOF) {
			t.Errorf("Read after Disconnect: %v, want io.EOF", err)
		}
	}
	if b.Peer("a") != nil {
		t.Error("b still has peer a")
	}
	if err := ba.WriteRTP(1, &rtp.Header{Version: 2}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteRTP to a disconnected peer: %v", err)
	}
	if _, _, err := ba.Stream(3, "").Read(nil); !errors.Is(err, io.EOF) {
		t.Errorf("a new stream of a disconnected peer: %v, want io.EOF", err)
	}
	snd.send(t, ab, 1, 1, false)
	poll.Until(t, 5*time.Second, "a's packet dropped by b", func() bool { return b.Stats().UnknownSource >= 1 })

	// Reconnecting makes a fresh flow.
	if _, err := b.Connect("a", a.Addr(), a.PublicKey()); err != nil {
		t.Fatal(err)
	}
	s := b.Peer("a").Stream(1, "")
	snd.send(t, ab, 1, 2, false)
	receive(t, snd, s, 1)
}

func TestCloseEndsEverything(t *testing.T) {
	a, _ := listenTest(t, "a")
	b, _ := listenTest(t, "b")
	ab, ba := connect(t, a, b)
	s := ba.Stream(1, "")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Read(nil); !errors.Is(err, io.EOF) {
		t.Errorf("Read after Close: %v", err)
	}
	if err := ba.RequestKeyframe(1); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
	if _, err := b.Connect("a", a.Addr(), a.PublicKey()); !errors.Is(err, ErrClosed) {
		t.Errorf("Connect after Close: %v", err)
	}
	_ = ab
}

func TestConnectRefuses(t *testing.T) {
	a, _ := listenTest(t, "a")
	b, _ := listenTest(t, "b")
	if _, err := a.Connect("a", b.Addr(), b.PublicKey()); err == nil {
		t.Error("connected to itself")
	}
	if _, err := a.Connect("b", b.Addr(), b.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Connect("c", b.Addr(), b.PublicKey()); err == nil {
		t.Error("two peers at one address")
	}
}

func TestRestartedPeerIsRekeyed(t *testing.T) {
	a, _ := listenTest(t, "a")
	b, _ := listenTest(t, "b")
	_, ba := connect(t, a, b)
	s := ba.Stream(9, "")
	snd := newSender()
	snd.send(t, a.Peer("b"), 9, 1000, false)
	receive(t, snd, s, 1)

	// a restarts: same id, new socket and key pair; the registry tells b.
	a.Close()
	a2, _ := listenTest(t, "a")
	if p, err := b.Connect("a", a2.Addr(), a2.PublicKey()); err != nil || p != ba {
		t.Fatalf("Connect: %v, same peer %v", err, p == ba)
	}
	a2b, err := a2.Connect("b", b.Addr(), b.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	// Sequence numbers start over: neither replays nor a gap to NACK.
	snd.send(t, a2b, 9, 1, false)
	receive(t, snd, s, 1)
	if es := b.Stats(); es.Replayed+es.AuthFailed != 0 {
		t.Errorf("b after the rekey: %+v", es)
	}
}

func TestWriteRefusesPacketsBehindReplayWindow(t *testing.T) {
	a, _ := listenTest(t, "a")
	b, _ := listenTest(t, "b")
	ab, _ := connect(t, a, b)
	h := rtp.Header{Version: 2, SequenceNumber: 5000}
	if err := ab.WriteRTP(1, &h, nil); err != nil {
		t.Fatal(err)
	}
	// The receiver's window holds the highest index and the 1023 before it.
	h.SequenceNumber = 5000 - replayWindow + 1
	if err := ab.WriteRTP(1, &h, nil); err != nil {
		t.Errorf("a resend at the edge of the window: %v", err)
	}
	h.SequenceNumber = 5000 - replayWindow
	if err := ab.WriteRTP(1, &h, nil); !errors.Is(err, ErrTooOld) {
		t.Errorf("a packet behind the window: %v, want ErrTooOld", err)
	}
	if err := ab.WriteRTP(2, &h, nil); err != nil {
		t.Errorf("another SSRC: %v", err)
	}
	if err := ab.WriteRTP(2, &h, make([]byte, maxRTPSize)); err == nil {
		t.Error("a packet larger than maxRTPSize was sent")
	}
	if got := a.Peers(); len(got) != 1 || got[0] != ab {
		t.Errorf("Peers = %v", got)
	}
}

func TestSlowReaderDropsWithoutBlockingOthers(t *testing.T) {
	a, _ := listenTest(t, "a")
	b, _ := listenTest(t, "b")
	ab, ba := connect(t, a, b)
	ba.Stream(1, "") // never read
	fast := ba.Stream(2, "")
	h := rtp.Header{Version: 2}
	payload := make([]byte, 1000)
	// Paced, and until the buffer is full: the kernel drops bursts on
	// loopback, the more so under -race.
	for deadline := time.Now().Add(5 * time.Second); b.Stats().BufferFull == 0; h.SequenceNumber++ {
		if time.Now().After(deadline) {
			t.Fatal("the unread stream's buffer never filled")
		}
		if err := ab.WriteRTP(1, &h, payload); err != nil {
			t.Fatal(err)
		}
		if h.SequenceNumber%20 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	snd := newSender()
	buf := make([]byte, 1500)
	for seq := uint16(0); ; seq++ {
		snd.send(t, ab, 2, seq, false)
		fast.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, _, err := fast.Read(buf); err == nil {
			break
		}
		if seq == 20 {
			t.Fatal("a stream read in time got nothing while another's buffer was full")
		}
	}
}
