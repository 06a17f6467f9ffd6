package sfu

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/rtc"
)

// countWriter stands in for the subscriber's write stream without costing
// anything itself, so the benchmark measures only the forwarding path.
type countWriter struct{ packets, bytes int }

func (w *countWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.packets++
	w.bytes += len(payload)
	return 12 + len(payload), nil
}

func (w *countWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkForward is the per-packet work of one layer's forwarding loop:
// parse, cache, classify and rewrite one ~1100-byte VP8 packet for each
// subscriber. It must not allocate: anything else is garbage at packet rate
// times subscribers.
func BenchmarkForward(b *testing.B) {
	for _, subs := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("downtracks=%d", subs), func(b *testing.B) {
			writers := make([]*countWriter, subs)
			r := newBenchRoute(b, subs, func(i int, d *DownTrack) {
				writers[i] = &countWriter{}
				d.writer = writers[i]
			})
			b.SetBytes(int64(len(r.raw)))
			b.ReportAllocs()
			for b.Loop() {
				r.next()
			}
			b.StopTimer()
			for i, w := range writers {
				// the keyframe plus one packet per iteration
				if w.packets != b.N+1 {
					b.Fatalf("down-track %d wrote %d packets in %d iterations", i, w.packets, b.N)
				}
			}
		})
	}
}

// benchRoute is one video layer's forwarding loop with subs down-tracks,
// each set up by attach, primed with a keyframe; next routes the next
// frame's packet, its numbers moving on as a real stream's do.
type benchRoute struct {
	track   *Track
	l       *layer
	pkt     packet
	hdr     rtp.Header
	raw     []byte
	sn, pic uint16
	ts      uint32
}

func newBenchRoute(b *testing.B, subs int, attach func(i int, d *DownTrack)) *benchRoute {
	info := TrackInfo{ID: "t", Participant: "p", Kind: webrtc.RTPCodecTypeVideo, Codec: webrtc.MimeTypeVP8}
	r := &benchRoute{track: newTrack(info, "1", vp8Codec, func([]rtcp.Packet) error { return nil }, zap.NewNop())}
	r.l = &layer{index: 0, rid: "q", ssrc: 1, cache: &rtc.PacketCache{}}
	r.track.layers[0].Store(r.l)
	for i := range subs {
		d := newDownTrack(r.track, &Participant{log: zap.NewNop()})
		attach(i, d)
		d.ssrc, d.pt = uint32(100+i), subPT
		r.track.addDownTrack(d)
	}
	b.Cleanup(func() { r.track.close(); r.l.fanout.stop() })
	src := vp8Source{ssrc: 1, sn: 1, ts: 1, pic: 1, width: 320, height: 180, size: 1100}
	key := src.frame(true, 0, 1)[0]
	inter := src.frame(false, 0, 1)[0]
	r.pkt = packet{layer: 0, header: &r.hdr}
	buf := make([]byte, 1500)
	n := copy(buf, key.raw)
	r.track.route(r.l, buf[:n], time.Now(), &r.pkt, nil) // starts every down-track
	n = copy(buf, inter.raw)
	r.raw = buf[:n]
	r.sn, r.ts, r.pic = inter.sn, inter.ts, inter.pic
	return r
}

func (r *benchRoute) next() {
	r.sn++
	r.ts += 3000
	r.pic = (r.pic + 1) & 0x7fff
	binary.BigEndian.PutUint16(r.raw[2:], r.sn)
	binary.BigEndian.PutUint32(r.raw[4:], r.ts)
	binary.BigEndian.PutUint16(r.raw[rtpHeaderSize+2:], 0x8000|r.pic)
	r.track.route(r.l, r.raw, time.Now(), &r.pkt, nil) // the forwarding loop reads the clock per packet
}

// sockWriter stands in for the subscriber's write stream with the send
// path's I/O and none of Pion's: it marshals the packet and writes it to a
// loopback socket through the subscriber's batcher, as the ICE conn does.
type sockWriter struct {
	c       *rtc.BatchConn
	to      netip.AddrPort
	buf     [1500]byte
	packets int
}

func (w *sockWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	n, err := h.MarshalTo(w.buf[:])
	if err != nil {
		return 0, err
	}
	n += copy(w.buf[n:], payload)
	w.packets++
	return w.c.WriteToAddrPort(w.buf[:n], w.to)
}

func (w *sockWriter) Write(b []byte) (int, error) { return w.c.WriteToAddrPort(b, w.to) }

// BenchmarkForwardBatched is BenchmarkForward down to the socket: each
// subscriber's packets go through its own batcher and socket (port-range
// mode), one pass per packet or per eight, as the forwarding loop makes
// them when a frame's packets have arrived together. It must not allocate
// either.
func BenchmarkForwardBatched(b *testing.B) {
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := sink.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, pass := range []int{1, 8} {
		for _, path := range []rtc.SendPath{rtc.SendGSO, rtc.SendMmsg, rtc.SendPlain} {
			if pass == 1 && path != rtc.SendPlain {
				continue // a pass of one packet is a plain send
			}
			const subs = 10
			b.Run(fmt.Sprintf("downtracks=%d/pass=%d/%v", subs, pass, path), func(b *testing.B) {
				writers := make([]*sockWriter, subs)
				r := newBenchRoute(b, subs, func(i int, d *DownTrack) {
					c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { c.Close() })
					batch := rtc.NewBatcher(path)
					d.subscriber.batch = batch
					writers[i] = &sockWriter{c: rtc.NewBatchConn(c, batch), to: to}
					d.writer = writers[i]
				})
				l := r.l
				b.SetBytes(int64(len(r.raw)))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if i%pass == 0 {
						l.fanout.open()
					}
					r.next()
					if i++; i%pass == 0 {
						l.fanout.close()
					}
				}
				l.fanout.close()
				b.StopTimer()
				for i, w := range writers {
					if w.packets != b.N+1 {
						b.Fatalf("down-track %d wrote %d packets in %d iterations", i, w.packets, b.N)
					}
				}
			})
		}
	}
}

const rtpHeaderSize = 12
