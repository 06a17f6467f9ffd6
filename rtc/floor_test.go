package rtc

import (
	"net"
	"net/netip"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// BenchmarkSendFloor is the least a forwarded packet can cost on this
// machine, per 1,100-byte packet: its AES-GCM SRTP protection, and its
// hand-over to the kernel over loopback by each send path (a plain WriteTo,
// a sendmmsg of 32 datagrams to 32 destinations, a GSO message of 8 to
// one). The load test's CPU per packet is judged against these.
func BenchmarkSendFloor(b *testing.B) {
	b.Run("srtp-aes-gcm", func(b *testing.B) {
		ctx, err := srtp.CreateContext(make([]byte, 16), make([]byte, 12), srtp.ProtectionProfileAeadAes128Gcm)
		if err != nil {
			b.Fatal(err)
		}
		pkt, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1},
			Payload: make([]byte, 1100-12)}).Marshal()
		if err != nil {
			b.Fatal(err)
		}
		var h rtp.Header
		out := make([]byte, 1500)
		b.SetBytes(int64(len(pkt)))
		b.ReportAllocs()
		for b.Loop() {
			pkt[3]++ // the next sequence number
			if _, err := h.Unmarshal(pkt); err != nil {
				b.Fatal(err)
			}
			if _, err := ctx.EncryptRTP(out, pkt, &h); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, bc := range []struct {
		name  string
		path  SendPath
		batch int // datagrams per pass
		dests int
	}{
		{"plain", SendPlain, 1, 1},
		{"sendmmsg-32", SendMmsg, 32, 32},
		{"gso-8", SendGSO, 8, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if KernelSendPath() < bc.path {
				b.Skipf("the kernel lacks %v", bc.path)
			}
			conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			c := NewBatchConn(conn, NewBatcher(bc.path))
			dests := make([]netip.AddrPort, bc.dests)
			for i := range dests {
				d, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close()
				go drain(d) // as a receiver would; an unread socket drops
				dests[i] = d.LocalAddr().(*net.UDPAddr).AddrPort()
			}
			pkt := make([]byte, 1100)
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i%bc.batch == 0 {
					c.b.Hold()
				}
				if _, err := c.WriteToAddrPort(pkt, dests[i%bc.dests]); err != nil {
					b.Fatal(err)
				}
				i++
				if i%bc.batch == 0 {
					c.b.Release()
				}
			}
			if i%bc.batch != 0 {
				c.b.Release()
			}
		})
	}
}

func drain(c *net.UDPConn) {
	buf := make([]byte, 65536)
	for {
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			return
		}
	}
}
