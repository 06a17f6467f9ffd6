package rtc

import (
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/switchboard-sfu/switchboard/internal/clock"
)

// feed sends count packets of size bytes, one every gap, and reports them
// to m in feedback of 20 packets each, with arrival(i) giving each packet's
// arrival (receiver clock), or -1 when lost.
func feed(m *linkMonitor, seq *uint16, start time.Duration, count, size int, gap time.Duration, arrival func(i int) time.Duration) {
	const per = 21 // a multiple of the 7 symbols of a two-bit status vector
	for base := 0; base < count; base += per {
		n := min(per, count-base)
		fb := &rtcp.TransportLayerCC{BaseSequenceNumber: *seq, PacketStatusCount: uint16(n)}
		ref := time.Duration(-1)
		prev := time.Duration(0)
		var symbols []uint16
		for i := base; i < base+n; i++ {
			m.record(*seq, int64(start+time.Duration(i)*gap), size)
			*seq++
			a := arrival(i)
			if a < 0 {
				symbols = append(symbols, rtcp.TypeTCCPacketNotReceived)
				continue
			}
			if ref < 0 {
				ref = a / (64 * time.Millisecond) * (64 * time.Millisecond)
				fb.ReferenceTime = uint32(ref / (64 * time.Millisecond))
				prev = ref
			}
			d := (a - prev) / (250 * time.Microsecond) * (250 * time.Microsecond)
			prev += d
			fb.RecvDeltas = append(fb.RecvDeltas, &rtcp.RecvDelta{Type: rtcp.TypeTCCPacketReceivedLargeDelta, Delta: d.Microseconds()})
			symbols = append(symbols, rtcp.TypeTCCPacketReceivedLargeDelta)
		}
		for len(symbols)%7 != 0 {
			symbols = append(symbols, rtcp.TypeTCCPacketNotReceived)
		}
		for i := 0; i < len(symbols); i += 7 {
			fb.PacketChunks = append(fb.PacketChunks, &rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit, SymbolList: symbols[i : i+7]})
		}
		b, err := fb.Marshal()
		if err != nil {
			panic(err)
		}
		m.onFeedback(b[4:])
	}
}

func newTestMonitor() (*linkMonitor, *uint16) {
	m, _, seq := newTestMonitorAt()
	return m, seq
}

// newTestMonitorAt is newTestMonitor with the fake clock it runs on.
func newTestMonitorAt() (*linkMonitor, *clock.Fake, *uint16) {
	c := clock.NewFake(time.Unix(1_700_000_000, 0))
	m := newLinkMonitor(c)
	m.useExtension(5)
	var seq uint16 = 65000 // wraps during the test
	return m, c, &seq
}

// 1,000-byte packets every 4 ms: 2 Mbit/s.
const (
	testGap  = 4 * time.Millisecond
	testSize = 1000
	testRate = 2_000_000
)

func TestLinkMonitorClearLink(t *testing.T) {
	m, seq := newTestMonitor()
	// 20 ms of path delay (and a clock offset), a little jitter.
	feed(m, seq, 0, 500, testSize, testGap, func(i int) time.Duration {
		return time.Hour + 20*time.Millisecond + time.Duration(i)*testGap + time.Duration(i%3)*time.Millisecond
	})
	st := m.state()
	if st.Congested() || st.Queue > 5*time.Millisecond || st.Loss != 0 {
		t.Errorf("clear link: %+v, want no queue, no loss, not congested", st)
	}
	if st.Delivered < testRate*9/10 || st.Delivered > testRate*11/10 {
		t.Errorf("delivered %d bit/s, want about %d", st.Delivered, testRate)
	}
}

// A bottleneck of 1 Mbit/s: each packet leaves it 8 ms after the one
// before, so the queue grows by 4 ms a packet.
func TestLinkMonitorBottleneck(t *testing.T) {
	m, seq := newTestMonitor()
	feed(m, seq, 0, 100, testSize, testGap, func(i int) time.Duration { return time.Duration(i) * testGap })
	feed(m, seq, 100*testGap, 100, testSize, testGap, func(i int) time.Duration {
		return 100*testGap + time.Duration(i)*8*time.Millisecond
	})
	st := m.state()
	if !st.Congested() || !st.Filling() {
		t.Errorf("bottleneck: %+v, want congested and filling", st)
	}
	if st.Delivered < 900_000 || st.Delivered > 1_100_000 {
		t.Errorf("delivered %d bit/s through a 1 Mbit/s bottleneck", st.Delivered)
	}
}

// A receiver that starts reading its socket 80 ms late (a busy machine):
// delay steps up, but packets arrive as fast as they are sent.
func TestLinkMonitorLateReceiver(t *testing.T) {
	m, seq := newTestMonitor()
	feed(m, seq, 0, 300, testSize, testGap, func(i int) time.Duration {
		d := time.Duration(i) * testGap
		if i >= 150 {
			d += 80 * time.Millisecond
		}
		return d
	})
	st := m.state()
	if st.Queue < 70*time.Millisecond {
		t.Errorf("queue %v, want the 80 ms step", st.Queue)
	}
	if st.Congested() || st.Filling() {
		t.Errorf("late receiver: %+v, want neither congested nor filling", st)
	}
}

// A probe stops at the first 20 ms of queue it builds, well before that
// amounts to congestion.
func TestLinkMonitorFillingEarly(t *testing.T) {
	m, seq := newTestMonitor()
	feed(m, seq, 0, 100, testSize, testGap, func(i int) time.Duration { return time.Duration(i) * testGap })
	// Then twice the link's rate for 20 packets: each waits 4 ms longer
	// than the one before.
	feed(m, seq, 100*testGap, 20, testSize, testGap, func(i int) time.Duration {
		return 100*testGap + time.Duration(i)*2*testGap
	})
	st := m.state()
	if !st.Filling() || st.Congested() {
		t.Errorf("%+v: want filling (queue 20-50 ms), not yet congested", st)
	}
}

func TestLinkMonitorLoss(t *testing.T) {
	m, seq := newTestMonitor()
	arrival := func(i int) time.Duration {
		if i%5 == 0 {
			return -1
		}
		return time.Duration(i) * testGap
	}
	feed(m, seq, 0, 300, testSize, testGap, arrival)
	st := m.state()
	if st.Loss < 0.18 || st.Loss > 0.22 || !st.Congested() {
		t.Errorf("20%% loss: %+v, want loss 0.2 and congested", st)
	}
	// 2% loss is a lossy link, not congestion.
	m, seq = newTestMonitor()
	feed(m, seq, 0, 300, testSize, testGap, func(i int) time.Duration {
		if i%50 == 0 {
			return -1
		}
		return time.Duration(i) * testGap
	})
	if st := m.state(); st.Congested() {
		t.Errorf("2%% loss: %+v, want not congested", st)
	}
}

// The link monitor's cost per packet sent: read the transport-wide
// sequence number, record it.
func BenchmarkLinkMonitorSend(b *testing.B) {
	m, _ := newTestMonitor()
	h := &rtp.Header{Version: 2, SSRC: 1}
	seq := []byte{0, 0}
	if err := h.SetExtension(5, seq); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := range b.N {
		seq[0], seq[1] = byte(i>>8), byte(i)
		m.onSend(h, 1200)
	}
}

// Receiver reports give the round trip and, where TWCC feedback is
// missing, the loss that counts as congestion.
func TestLinkMonitorReceiverReports(t *testing.T) {
	m, c, _ := newTestMonitorAt()
	now := c.Now()
	// Our sender report went out 300 ms ago; the receiver held it 100 ms.
	sr := NTPCompact(NTPTime(now.Add(-300 * time.Millisecond)))
	m.onReceiverReport([]rtcp.ReceptionReport{
		{SSRC: 1, FractionLost: 5, LastSenderReport: sr, Delay: 65536 / 10},
		{SSRC: 2, FractionLost: 64}, // 25%, no sender report seen yet
	}, now)
	st := m.state()
	if st.RTT < 190*time.Millisecond || st.RTT > 210*time.Millisecond {
		t.Errorf("RTT %v, want 200 ms", st.RTT)
	}
	if st.ReportedLoss != 0.25 || !st.Congested() {
		t.Errorf("%+v: want 25%% reported loss, congested without TWCC feedback", st)
	}
	m.onReceiverReport([]rtcp.ReceptionReport{{SSRC: 1, FractionLost: 5}, {SSRC: 2, FractionLost: 10}}, now)
	if st := m.state(); st.Congested() {
		t.Errorf("%+v: 4%% reported loss is not congestion", st)
	}
}

// Facts go stale: without feedback for staleFeedback the queue and loss it
// showed no longer count, and a loss report only for rrWindow.
func TestLinkMonitorStale(t *testing.T) {
	m, c, seq := newTestMonitorAt()
	// 30% of the packets lost: congested while the feedback is fresh.
	feed(m, seq, 0, 200, testSize, testGap, func(i int) time.Duration {
		if i%10 < 3 {
			return -1
		}
		return time.Duration(i) * testGap
	})
	m.onReceiverReport([]rtcp.ReceptionReport{{SSRC: 1, FractionLost: 64}}, c.Now())
	if st := m.state(); !st.Fresh || !st.Congested() {
		t.Fatalf("%+v: want fresh and congested", st)
	}
	c.Advance(staleFeedback)
	if st := m.state(); st.Fresh || !st.Congested() || st.ReportedLoss != 0.25 {
		t.Errorf("%+v after %v without feedback: want stale, congested by the 25%% reported loss", st, staleFeedback)
	}
	c.Advance(rrWindow - staleFeedback)
	if st := m.state(); st.Congested() || st.ReportedLoss != 0 {
		t.Errorf("%+v after %v without reports: want the loss report over", st, rrWindow)
	}
}

// Feedback read in place: every chunk kind (run length, one-bit and
// two-bit vectors) and delta size (small, large, negative) as Chrome
// sends them.
func TestLinkMonitorFeedbackChunks(t *testing.T) {
	m, _ := newTestMonitor()
	for i := range 24 {
		m.record(uint16(100+i), int64(i+1)*int64(time.Millisecond), 1000)
	}
	const (
		small = rtcp.TypeTCCPacketReceivedSmallDelta
		large = rtcp.TypeTCCPacketReceivedLargeDelta
		none  = rtcp.TypeTCCPacketNotReceived
	)
	fb := &rtcp.TransportLayerCC{BaseSequenceNumber: 100, PacketStatusCount: 24, ReferenceTime: 2,
		PacketChunks: []rtcp.PacketStatusChunk{
			&rtcp.RunLengthChunk{PacketStatusSymbol: small, RunLength: 3},
			&rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeOneBit,
				SymbolList: []uint16{1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0}},
			&rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit,
				SymbolList: []uint16{large, none, large, small, none, none, small}},
		}}
	var want []int64 // arrival per packet, 0 if lost
	arrival := int64(2 * 64 * time.Millisecond)
	add := func(symbol uint16, d time.Duration) {
		if symbol == none {
			want = append(want, 0)
			return
		}
		fb.RecvDeltas = append(fb.RecvDeltas, &rtcp.RecvDelta{Type: symbol, Delta: d.Microseconds()})
		arrival += int64(d)
		want = append(want, arrival)
	}
	for range 3 {
		add(small, 250*time.Microsecond)
	}
	for i := range 14 {
		if i%2 == 0 {
			add(small, 10*time.Millisecond)
		} else {
			add(none, 0)
		}
	}
	add(large, 100*time.Millisecond)
	add(none, 0)
	add(large, -5*time.Millisecond)
	add(small, 63*time.Millisecond)
	add(none, 0)
	add(none, 0)
	add(small, 0)
	b, err := fb.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m.onFeedback(b[4:])
	if m.n != len(want) {
		t.Fatalf("%d acks, want %d", m.n, len(want))
	}
	for i, w := range want {
		if got := m.acks[i].arrival; got != w {
			t.Errorf("packet %d: arrival %d, want %d", i, got, w)
		}
	}
	// The same report again is no news.
	m.onFeedback(b[4:])
	if m.n != len(want) {
		t.Errorf("%d acks after a repeated report, want %d", m.n, len(want))
	}
	if a := testing.AllocsPerRun(10, func() { m.onFeedback(b[4:]) }); a != 0 {
		t.Errorf("%v allocations per feedback", a)
	}
}

// The interceptor finds the receiver report in a compound and reads its
// blocks as rtcp.Unmarshal would.
func TestLinkMonitorReadsCompound(t *testing.T) {
	m, c, _ := newTestMonitorAt()
	sr := NTPCompact(NTPTime(c.Now().Add(-300 * time.Millisecond)))
	b, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.PictureLossIndication{MediaSSRC: 1},
		&rtcp.ReceiverReport{SSRC: 9, Reports: []rtcp.ReceptionReport{
			{SSRC: 1, FractionLost: 5, LastSenderReport: sr, Delay: 65536 / 10},
			{SSRC: 2, FractionLost: 64},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := (&monitorInterceptor{m: m}).BindRTCPReader(interceptor.RTCPReaderFunc(
		func(p []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			return copy(p, b), a, nil
		}))
	buf := make([]byte, 1500)
	if _, _, err := r.Read(buf, nil); err != nil {
		t.Fatal(err)
	}
	st := m.state()
	if st.RTT < 190*time.Millisecond || st.RTT > 210*time.Millisecond || st.ReportedLoss != 0.25 {
		t.Errorf("%+v: want a 200 ms round trip and 25%% reported loss", st)
	}
	if a := testing.AllocsPerRun(10, func() { _, _, _ = r.Read(buf, nil) }); a != 0 {
		t.Errorf("%v allocations per compound read", a)
	}
}
