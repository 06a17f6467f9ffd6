package trunk

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/pion/rtp"
)

// BenchmarkWriteRTP measures the send path (header rewrite, SRTP, sendto)
// to a socket that nobody reads, so the receiving side costs nothing; and
// without the sendto, the part that is ours rather than the kernel's.
func BenchmarkWriteRTP(b *testing.B) {
	b.Run("socket", func(b *testing.B) { benchmarkWriteRTP(b, false) })
	b.Run("nosocket", func(b *testing.B) { benchmarkWriteRTP(b, true) })
}

func benchmarkWriteRTP(b *testing.B, noSocket bool) {
	a, ac := listenTest(b, "a")
	if noSocket {
		ac.setDrop(func([]byte) bool { return true })
	}
	p := peerToSink(b, a)
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 1234, Timestamp: 1}
	if err := h.SetExtension(1, []byte{1, 2}); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 1100)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		h.SequenceNumber++
		if err := p.WriteRTP(77, &h, payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoundTrip sends a packet and reads it from the receiving Stream:
// encryption, the loopback socket, the read loop's decryption and routing,
// and the Stream's buffer.
func BenchmarkRoundTrip(b *testing.B) {
	x, _ := listenTest(b, "a")
	y, _ := listenTest(b, "b")
	xy, yx := connect(b, x, y)
	s := yx.Stream(77, "")
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 1234, Timestamp: 1}
	payload := make([]byte, 1100)
	buf := make([]byte, 1500)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		h.SequenceNumber++
		if err := xy.WriteRTP(77, &h, payload); err != nil {
			b.Fatal(err)
		}
		if _, _, err := s.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteRTPParallel writes a stream per goroutine over one peer, as
// the forwarding goroutines of many tracks do.
func BenchmarkWriteRTPParallel(b *testing.B) {
	a, _ := listenTest(b, "a")
	p := peerToSink(b, a)
	var next atomic.Uint32
	payload := make([]byte, 1100)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ssrc := next.Add(1)
		h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 1234, Timestamp: 1}
		for pb.Next() {
			h.SequenceNumber++
			if err := p.WriteRTP(ssrc, &h, payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// peerToSink connects a to a peer "b" whose address is a socket nobody
// reads, so that what a sends costs the receiving side nothing.
func peerToSink(b *testing.B, a *Endpoint) *Peer {
	b.Helper()
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	other, _ := listenTest(b, "b")
	p, err := a.Connect("b", sink.LocalAddr().(*net.UDPAddr), other.PublicKey())
	if err != nil {
		b.Fatal(err)
	}
	return p
}
