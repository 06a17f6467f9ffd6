package rtc

import "testing"

// The three benchmarks cover the per-packet work of the forwarding loop; each
// must report 0 allocs/op, since anything else is garbage at packet rate.

func BenchmarkIsKeyframeStartVP8(b *testing.B) {
	// Behind a full descriptor, so the parser walks every optional field
	// before it can answer.
	for _, bc := range []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"inter", cat([]byte{0x90, 0xf0, 0x81, 0x23, 0x07, 0x40}, vp8Inter, make([]byte, 1100)), false},
		{"key", cat([]byte{0x90, 0xf0, 0x81, 0x23, 0x07, 0x41}, vp8Key, make([]byte, 1100)), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if IsKeyframeStart(CodecVP8, bc.payload) != bc.want {
					b.Fatal("wrong verdict")
				}
			}
		})
	}
}

func BenchmarkRewrite(b *testing.B) {
	r := NewRewriter(1000, 5000)
	r.Start(0, 0, 0)
	b.ReportAllocs()
	var sn, startSN uint16
	var ts uint32
	for b.Loop() {
		if _, _, ok := r.Rewrite(sn, ts); !ok {
			b.Fatalf("packet %d dropped", sn)
		}
		sn++
		ts += 3000
		// Rewrite drops packets 32768 or more after Start; restarting
		// keeps the benchmark on the forwarding path rather than the early
		// return.
		if sn-startSN == 30000 {
			r.Start(sn, ts, 3000)
			startSN = sn
		}
	}
}

func BenchmarkPacketCacheStore(b *testing.B) {
	c := new(PacketCache)
	pkt := testPacket(0, 1200)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	var sn uint16
	for b.Loop() {
		c.Store(sn, pkt)
		sn++
	}
}

func BenchmarkPacketCacheGet(b *testing.B) {
	c := new(PacketCache)
	for sn := range uint16(PacketCacheSize) {
		c.Store(sn, testPacket(sn, 1200))
	}
	dst := make([]byte, 1500)
	b.ReportAllocs()
	b.SetBytes(1200)
	var sn uint16
	for b.Loop() {
		if c.Get(sn, dst) == 0 {
			b.Fatalf("packet %d missing", sn)
		}
		sn = (sn + 1) % PacketCacheSize
	}
}
