package rtc

import (
	"fmt"
	"testing"
)

type rewriterOpKind int

const (
	opStart rewriterOpKind = iota
	opRewrite
	opDrop
	opInsert
)

// rewriterOp is one call on a Rewriter and what it must return. For Start,
// sn/ts/gap are its arguments; for Rewrite, sn/ts are the incoming packet and
// outSN/outTS the expected result; for Drop, sn is the argument; for
// Insert, outSN/outTS the expected result.
type rewriterOp struct {
	kind   rewriterOpKind
	sn     uint16
	ts     uint32
	gap    uint32
	outSN  uint16
	outTS  uint32
	wantOK bool
}

func start(sn uint16, ts, gap uint32) rewriterOp {
	return rewriterOp{kind: opStart, sn: sn, ts: ts, gap: gap}
}

func sent(sn uint16, ts uint32, outSN uint16, outTS uint32) rewriterOp {
	return rewriterOp{kind: opRewrite, sn: sn, ts: ts, outSN: outSN, outTS: outTS, wantOK: true}
}

func dropped(sn uint16, ts uint32) rewriterOp {
	return rewriterOp{kind: opRewrite, sn: sn, ts: ts}
}

func drop(sn uint16) rewriterOp { return rewriterOp{kind: opDrop, sn: sn} }

func insert(outSN uint16, outTS uint32) rewriterOp {
	return rewriterOp{kind: opInsert, outSN: outSN, outTS: outTS}
}

func TestRewriter(t *testing.T) {
	tests := []struct {
		name    string
		firstSN uint16
		firstTS uint32
		ops     []rewriterOp
	}{
		{
			name: "nothing is sent or mapped before Start", firstSN: 1000, firstTS: 5000,
			ops: []rewriterOp{dropped(40000, 123456)},
		},
		{
			name: "first packet gets firstSN and firstTS", firstSN: 1000, firstTS: 5000,
			ops: []rewriterOp{start(40000, 123456, 0), sent(40000, 123456, 1000, 5000)},
		},
		{
			// The gap is between two sources; with no source before, there is
			// nothing to leave room after.
			name: "first Start ignores tsGap", firstSN: 1000, firstTS: 5000,
			ops: []rewriterOp{start(40000, 123456, 3000), sent(40000, 123456, 1000, 5000)},
		},
		{
			name: "later packets keep their spacing, losses included", firstSN: 1000, firstTS: 5000,
			ops: []rewriterOp{
				start(40000, 123456, 0),
				sent(40000, 123456, 1000, 5000),
				sent(40001, 126456, 1001, 8000),
				sent(40002, 126456, 1002, 8000),
				sent(40005, 135456, 1005, 17000),
				sent(40100, 400000, 1100, 281544),
			},
		},
		{
			name: "packets older than the start are dropped", firstSN: 1000, firstTS: 5000,
			ops: []rewriterOp{
				start(100, 90000, 0),
				dropped(99, 87000),
				dropped(50, 1),
				dropped(100+32768, 0),
				sent(100, 90000, 1000, 5000),
				dropped(99, 87000),
				sent(101, 93000, 1001, 8000),
			},
		},
		{
			name: "duplicates map to the same output", firstSN: 1000, firstTS: 5000,
			ops: []rewriterOp{
				start(100, 90000, 0),
				sent(100, 90000, 1000, 5000),
				sent(101, 93000, 1001, 8000),
				sent(101, 93000, 1001, 8000),
				sent(100, 90000, 1000, 5000),
				sent(102, 96000, 1002, 11000),
			},
		},
		{
			name: "reordering keeps input order", firstSN: 1000, firstTS: 5000,
			ops: []rewriterOp{
				start(10, 90000, 0),
				sent(10, 90000, 1000, 5000),
				sent(12, 96000, 1002, 11000),
				sent(11, 93000, 1001, 8000),
				sent(13, 99000, 1003, 14000),
			},
		},
		{
			// The late packet 11 must not pull the last-sent marker back:
			// the next source continues after 12, and 12 can still be NACKed.
			name: "reordered packet does not rewind the last sent", firstSN: 1000, firstTS: 5000,
			ops: []rewriterOp{
				start(10, 90000, 0),
				sent(10, 90000, 1000, 5000),
				sent(12, 96000, 1002, 11000),
				sent(11, 93000, 1001, 8000),
				start(500, 7, 3000),
				sent(500, 7, 1003, 14000),
			},
		},
		{
			name: "input sequence number wraps", firstSN: 1000, firstTS: 5000,
			ops: []rewriterOp{
				start(65534, 90000, 0),
				sent(65534, 90000, 1000, 5000),
				sent(65535, 93000, 1001, 8000),
				sent(0, 96000, 1002, 11000),
				sent(1, 99000, 1003, 14000),
				dropped(65533, 87000),
			},
		},
		{
			name: "input wraps with reordering across it", firstSN: 1000, firstTS: 5000,
			ops: []rewriterOp{
				start(65535, 90000, 0),
				sent(65535, 90000, 1000, 5000),
				sent(1, 96000, 1002, 11000),
				sent(0, 93000, 1001, 8000),
				dropped(65534, 87000),
			},
		},
		{
			name: "output sequence number wraps", firstSN: 65535, firstTS: 5000,
			ops: []rewriterOp{
				start(500, 90000, 0),
				sent(500, 90000, 65535, 5000),
				sent(501, 93000, 0, 8000),
				sent(502, 96000, 1, 11000),
			},
		},
		{
			name: "output timestamp wraps", firstSN: 1000, firstTS: 0xfffff000,
			ops: []rewriterOp{
				start(100, 1000, 0),
				sent(100, 1000, 1000, 0xfffff000),
				sent(101, 4000, 1001, 0xfffffbb8),
				sent(102, 10000, 1002, 0x00001328),
			},
		},
		{
			name: "input timestamp wraps", firstSN: 1000, firstTS: 5000,
			ops: []rewriterOp{
				start(100, 0xffffff00, 0),
				sent(100, 0xffffff00, 1000, 5000),
				sent(101, 0x00000100, 1001, 5512),
			},
		},
		{
			name: "switch continues without a gap", firstSN: 1000, firstTS: 5000,
			ops: []rewriterOp{
				start(100, 90000, 0),
				sent(100, 90000, 1000, 5000),
				sent(101, 93000, 1001, 8000),
				sent(102, 96000, 1002, 11000),
				start(7000, 42, 3000),
				sent(7000, 42, 1003, 14000),
				sent(7001, 3042, 1004, 17000),
				sent(7003, 9042, 1006, 23000),
				sent(7002, 6042, 1005, 20000),
			},
		},
		{
			// Packets of the old source still in flight must not reach the
			// subscriber under the new source's numbering.
			name: "old source after a switch is dropped", firstSN: 1000, firstTS: 5000,
			ops: []rewriterOp{
				start(100, 90000, 0),
				sent(100, 90000, 1000, 5000),
				sent(101, 93000, 1001, 8000),
				start(7000, 42, 3000),
				dropped(102, 96000),
				sent(7000, 42, 1002, 11000),
				dropped(103, 99000),
				sent(7001, 3042, 1003, 14000),
				dropped(6999, 0),
			},
		},
		{
			name: "switch before any packet of the new source was sent", firstSN: 1000, firstTS: 5000,
			ops: []rewriterOp{
				start(100, 90000, 0),
				sent(100, 90000, 1000, 5000),
				start(7000, 42, 3000),
				// The new source's first packet has not been sent yet.
				sent(7000, 42, 1001, 8000),
			},
		},
		{
			name: "switch across the output wrap", firstSN: 65534, firstTS: 0xffffe000,
			ops: []rewriterOp{
				start(100, 90000, 0),
				sent(100, 90000, 65534, 0xffffe000),
				sent(101, 93000, 65535, 0xffffebb8),
				start(30000, 1, 3000),
				sent(30000, 1, 0, 0xfffff770),
				sent(30001, 3001, 1, 0x00000328),
			},
		},
		{
			// Each switch leaves its own tsGap; a zero gap would put two
			// frames of different sources on one timestamp.
			name: "three sources in a row", firstSN: 10, firstTS: 1000,
			ops: []rewriterOp{
				start(1, 1, 0),
				sent(1, 1, 10, 1000),
				start(2000, 50, 1500),
				sent(2000, 50, 11, 2500),
				sent(2001, 950, 12, 3400),
				start(60000, 7, 90),
				sent(60000, 7, 13, 3490),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRewriter(tt.firstSN, tt.firstTS)
			if r.Started() {
				t.Fatal("Started() = true before Start")
			}
			runOps(t, r, tt.ops)
		})
	}
}

// A retransmission goes through the cache and Rewrite again; it
// must come out with the numbers the original was sent with and must not
// move the stream on.
func TestRewriterRetransmitRoundTrip(t *testing.T) {
	r := NewRewriter(65500, 1<<31)
	r.Start(65000, 12345, 0)
	type pkt struct {
		sn uint16
		ts uint32
	}
	var out []pkt
	for i := range 100 {
		sn, ts, ok := r.Rewrite(65000+uint16(i), 12345+uint32(i/3)*3000)
		if !ok {
			t.Fatalf("packet %d dropped", i)
		}
		out = append(out, pkt{sn, ts})
	}
	for i, o := range out {
		in := 65000 + uint16(i)
		sn, ts, ok := r.Rewrite(in, 12345+uint32(i/3)*3000)
		if !ok || sn != o.sn || ts != o.ts {
			t.Fatalf("resend of %d: (%d, %d, %v), want (%d, %d, true)", in, sn, ts, ok, o.sn, o.ts)
		}
	}
	// The stream continues where it was, not after some retransmission.
	if sn, _, _ := r.Rewrite(65100, 12345+34*3000); sn != out[99].sn+1 {
		t.Errorf("next packet after retransmissions got %d, want %d", sn, out[99].sn+1)
	}
}

// A subscriber is forwarded one source for as long as the call lasts: far
// more than half the 16-bit sequence space. Every packet must still be sent
// with consecutive numbers.
func TestRewriterLongStream(t *testing.T) {
	for _, n := range []int{32767, 32768, 65536, 200000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := NewRewriter(1, 0)
			r.Start(0, 0, 0)
			for i := range n + 1 {
				in := uint16(i)
				sn, ts, ok := r.Rewrite(in, uint32(i)*3000)
				if !ok || sn != uint16(i+1) || ts != uint32(i)*3000 {
					t.Fatalf("packet %d: Rewrite(%d) = (%d, %d, %v), want (%d, %d, true)",
						i, in, sn, ts, ok, uint16(i+1), uint32(i)*3000)
				}
			}
		})
	}
}

// Dropped packets (higher temporal layers) and inserted ones (padding) must
// leave no gap and no duplicate, also when packets arrive out of order
// around them.
func TestRewriterDropAndInsert(t *testing.T) {
	tests := []struct {
		name string
		ops  []rewriterOp
	}{
		{"a drop closes up", []rewriterOp{
			start(100, 0, 0), sent(100, 0, 1, 0), drop(101), sent(102, 10, 2, 10), sent(103, 20, 3, 20),
		}},
		{"consecutive drops", []rewriterOp{
			start(100, 0, 0), sent(100, 0, 1, 0), drop(101), drop(102), drop(103), sent(104, 10, 2, 10),
		}},
		{"a late packet from before a drop keeps its slot", []rewriterOp{
			start(100, 0, 0), sent(100, 0, 1, 0), sent(102, 20, 3, 20), drop(103),
			sent(101, 10, 2, 10), sent(104, 30, 4, 30),
		}},
		{"dropping an old packet changes nothing", []rewriterOp{
			start(100, 0, 0), sent(100, 0, 1, 0), sent(101, 0, 2, 0), drop(100), sent(102, 0, 3, 0),
		}},
		{"an insert takes the next number and the last timestamp", []rewriterOp{
			start(100, 0, 0), sent(100, 500, 1, 500), insert(2, 500), insert(3, 500), sent(101, 600, 4, 600),
		}},
		{"a late packet from before an insert keeps its slot", []rewriterOp{
			start(100, 0, 0), sent(100, 0, 1, 0), sent(102, 0, 3, 0), insert(4, 0), sent(101, 0, 2, 0), sent(103, 0, 5, 0),
		}},
		{"drops and inserts across wrap-around", []rewriterOp{
			start(65534, 0, 0), sent(65534, 0, 1, 0), drop(65535), insert(2, 0), sent(0, 0, 3, 0), drop(1), sent(2, 0, 4, 0),
		}},
		{"a switch forgets the old source's changes", []rewriterOp{
			start(100, 0, 0), sent(100, 0, 1, 0), drop(101), sent(102, 0, 2, 0),
			start(9000, 50, 10), sent(9000, 50, 3, 10), sent(9001, 60, 4, 20), dropped(8999, 40),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRewriter(1, 0)
			runOps(t, r, tt.ops)
		})
	}
}

// runOps applies ops to r in order and checks what each returns.
func runOps(t *testing.T, r *Rewriter, ops []rewriterOp) {
	t.Helper()
	for i, op := range ops {
		switch op.kind {
		case opStart:
			r.Start(op.sn, op.ts, op.gap)
			if !r.Started() {
				t.Fatalf("op %d: Started() = false after Start", i)
			}
		case opRewrite:
			sn, ts, ok := r.Rewrite(op.sn, op.ts)
			if ok != op.wantOK || (ok && (sn != op.outSN || ts != op.outTS)) {
				t.Errorf("op %d: Rewrite(%d, %d) = (%d, %d, %v), want (%d, %d, %v)",
					i, op.sn, op.ts, sn, ts, ok, op.outSN, op.outTS, op.wantOK)
			}
		case opDrop:
			r.Drop(op.sn)
		case opInsert:
			if sn, ts := r.Insert(); sn != op.outSN || ts != op.outTS {
				t.Errorf("op %d: Insert() = (%d, %d), want (%d, %d)", i, sn, ts, op.outSN, op.outTS)
			}
		}
	}
}
