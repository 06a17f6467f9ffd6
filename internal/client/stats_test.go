package client

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestSeqTracker(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		seqs                       []uint16
		expected, lost, dups, late int64
	}{
		{"in order", []uint16{10, 11, 12, 13}, 4, 0, 0, 0},
		{"gap", []uint16{10, 11, 14, 15}, 6, 2, 0, 0},
		{"reordered", []uint16{10, 12, 11, 13}, 4, 0, 0, 1},
		{"gap filled late", []uint16{10, 11, 13, 14, 15, 12}, 6, 0, 0, 1},
		{"duplicate", []uint16{10, 11, 11, 12}, 3, 0, 1, 0},
		{"duplicate of a late one", []uint16{10, 12, 11, 11}, 3, 0, 1, 1},
		{"wrap", []uint16{65534, 65535, 0, 1}, 4, 0, 0, 0},
		{"gap across the wrap", []uint16{65534, 1}, 4, 2, 0, 0},
		{"reordered before the first", []uint16{10, 9, 11}, 3, 0, 0, 1},
		{"big jump", []uint16{1, 2000, 2001}, 2001, 1998, 0, 0},
		{"duplicate after a big jump", []uint16{1, 3000, 3000}, 3000, 2998, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s seqTracker
			var dups int64
			for _, sn := range tc.seqs {
				if s.push(sn) {
					dups++
				}
			}
			if got := s.expected(); got != tc.expected {
				t.Errorf("expected = %d, want %d", got, tc.expected)
			}
			if got := s.expected() - s.unique; got != tc.lost {
				t.Errorf("lost = %d, want %d", got, tc.lost)
			}
			if dups != tc.dups || s.duplicates != tc.dups {
				t.Errorf("duplicates = %d (counted %d), want %d", dups, s.duplicates, tc.dups)
			}
			if s.late != tc.late {
				t.Errorf("late = %d, want %d", s.late, tc.late)
			}
		})
	}
}

// A long stream with every tenth packet missing and some reordering loses
// exactly a tenth, through several wraps.
func TestSeqTrackerLongStream(t *testing.T) {
	var s seqTracker
	sn := uint16(60000)
	var sent int64
	for i := range 300_000 {
		sent++
		switch {
		case i%10 == 3:
			// lost
		case i%10 == 5:
			s.push(sn + 1) // 5 and 6 swapped
			s.push(sn)
		case i%10 == 6:
		default:
			s.push(sn)
		}
		sn++
	}
	// The last packet sent (i = 299999, i%10 == 9) arrived, so expected spans all.
	if s.expected() != sent {
		t.Fatalf("expected %d, want %d", s.expected(), sent)
	}
	if lost := s.expected() - s.unique; lost != sent/10 {
		t.Fatalf("lost %d, want %d", lost, sent/10)
	}
}

func TestJitter(t *testing.T) {
	// Packets 20 ms apart in both clocks: no jitter.
	j := jitterMeter{clockRate: 48000}
	for i := range 100 {
		j.push(uint32(i*960), int64(i)*20e6)
	}
	if j.jitter > 1e-9 {
		t.Fatalf("jitter %v for a perfectly paced stream", j.jitter)
	}
	// Arrivals alternately 2 ms early and late: |D| is 4 ms each time, and
	// the estimate converges to it (RFC 3550 A.8).
	j = jitterMeter{clockRate: 48000}
	for i := range 1000 {
		off := int64(2e6)
		if i%2 == 1 {
			off = -off
		}
		j.push(uint32(i*960), int64(i)*20e6+off)
	}
	if ms := j.jitter / 48; math.Abs(ms-4) > 0.01 {
		t.Fatalf("jitter %.3f ms, want 4", ms)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	// 1..100000 µs, uniform: quantile q is about q*100000.
	for v := uint64(1); v <= 100_000; v++ {
		h.Record(v)
	}
	s := h.Snapshot()
	if s.Count() != 100_000 {
		t.Fatalf("count %d", s.Count())
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99} {
		got, want := s.Quantile(q), q*100_000
		if math.Abs(got-want)/want > 0.035 {
			t.Errorf("q%.2f = %.0f, want %.0f within 3.5%%", q, got, want)
		}
	}
	if got := s.Quantile(0); got != 1 {
		t.Errorf("min = %v, want 1", got)
	}
	// Small values are exact; huge ones land in the last bucket.
	var e Histogram
	e.Record(7)
	e.Record(1 << 40)
	es := e.Snapshot()
	if es.Quantile(0.5) != 7 || es.Quantile(1) < 1<<31 {
		t.Errorf("quantiles %v %v", es.Quantile(0.5), es.Quantile(1))
	}
	// A window is the difference of two snapshots.
	before := h.Snapshot()
	h.Record(50)
	after := h.Snapshot()
	after.Sub(&before)
	if after.Count() != 1 || after.Quantile(0.5) != 50 {
		t.Errorf("window: count %d, median %v", after.Count(), after.Quantile(0.5))
	}
	for i := range histBuckets - 1 {
		if histValue(i) >= histValue(i+1) || histIndex(uint64(histValue(i))) != i {
			t.Fatalf("bucket %d: value %v maps to bucket %d", i, histValue(i), histIndex(uint64(histValue(i))))
		}
	}
}

// packet builds an RTP packet with a stamped payload.
func packet(sn uint16, ts uint32, marker bool, payload []byte, ext bool) []byte {
	h := rtp.Header{Version: 2, SequenceNumber: sn, Timestamp: ts, Marker: marker, PayloadType: 96, SSRC: 1}
	if ext {
		_ = h.SetExtension(3, []byte{1, 2})
	}
	b, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// The receiver takes the latency from the stamp, counts loss from sequence
// numbers, and finds header extensions and padding.
func TestObserve(t *testing.T) {
	r := &Received{Kind: "video"}
	rc := &receiver{r: r, vp8: true, video: true, jitter: jitterMeter{clockRate: 90000}}
	base := time.Now().UnixNano()
	sent := 0
	for i := range 100 {
		if i%4 == 1 {
			continue // lost
		}
		payload := make([]byte, 100)
		putStamp(payload, base+int64(i)*1e6)
		// Arrives 3 ms after its stamp.
		rc.observe(packet(uint16(1000+i), uint32(i*3000), i%2 == 0, payload, i%3 == 0), base+int64(i)*1e6+3e6)
		sent++
	}
	// A padded packet: the stamp sits before the padding.
	payload := make([]byte, 100)
	putStamp(payload, base)
	p, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 1100, Padding: true, PaddingSize: 4}, Payload: payload, PaddingSize: 4}).Marshal()
	if p[0]&0x20 == 0 {
		t.Fatal("padding bit not set")
	}
	rc.observe(p, base+3e6)
	rc.observe(p, base+3e6) // and its duplicate
	sent++

	s := r.Stats()
	if s.Packets != int64(sent)+1 || s.Duplicates != 1 || s.Unique != int64(sent) {
		t.Errorf("packets %d, unique %d, duplicates %d; want %d, %d, 1", s.Packets, s.Unique, s.Duplicates, sent+1, sent)
	}
	if s.Expected != 101 || s.Lost() != 25 {
		t.Errorf("expected %d, lost %d; want 101, 25", s.Expected, s.Lost())
	}
	lat := r.Latency.Snapshot()
	if lat.Count() != uint64(sent) {
		t.Errorf("%d latency samples, want %d", lat.Count(), sent)
	}
	if q := lat.Quantile(0.5); math.Abs(q-3000) > 100 {
		t.Errorf("median latency %v µs, want 3000", q)
	}
	if s.Frames != 50 {
		t.Errorf("frames %d, want 50 (the marked packets)", s.Frames)
	}
	// A padding-only packet takes a sequence number but is no media.
	pad, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 1101, Padding: true, PaddingSize: 200}, PaddingSize: 200}).Marshal()
	rc.observe(pad, base)
	if s := r.Stats(); s.Padding != 1 || s.Packets != int64(sent)+1 || s.Expected != 102 || s.Lost() != 25 {
		t.Errorf("after padding: %+v", s)
	}
	// A payload without the trailer gives no latency.
	rc.observe(packet(1102, 0, false, make([]byte, 50), false), base)
	if after := r.Latency.Snapshot(); after.Count() != uint64(sent) {
		t.Error("an unstamped packet was measured")
	}
	// Truncated garbage is ignored.
	rc.observe([]byte{0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0, 9}, base)
}

func TestStamp(t *testing.T) {
	b := make([]byte, 20)
	putStamp(b, 1234567890123)
	if v, ok := readStamp(b); !ok || v != 1234567890123 {
		t.Fatalf("readStamp = %v, %v", v, ok)
	}
	binary.BigEndian.PutUint32(b[8:], 0)
	if _, ok := readStamp(b); ok {
		t.Fatal("a payload without the magic word has a stamp")
	}
	if _, ok := readStamp(b[:5]); ok {
		t.Fatal("a short payload has a stamp")
	}
}
