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
			info := TrackInfo{ID: "t", Participant: "p", Kind: webrtc.RTPCodecTypeVideo, Codec: webrtc.MimeTypeVP8}
			track := newTrack(info, "1", vp8Codec, func([]rtcp.Packet) error { return nil }, zap.NewNop())
			l := &layer{index: 0, rid: "q", ssrc: 1, cache: &rtc.PacketCache{}}
			track.layers[0].Store(l)
			writers := make([]*countWriter, subs)
			for i := range subs {
				d := newDownTrack(track, &Participant{log: zap.NewNop()})
				writers[i] = &countWriter{}
				d.writer, d.ssrc, d.pt = writers[i], uint32(100+i), subPT
				track.addDownTrack(d)
			}
			b.Cleanup(func() { track.close(); l.fanout.stop() })

			src := vp8Source{ssrc: 1, sn: 1, ts: 1, pic: 1, width: 320, height: 180, size: 1100}
			key := src.frame(true, 0, 1)[0]
			inter := src.frame(false, 0, 1)[0]
			var hdr rtp.Header
			pkt := packet{layer: 0, header: &hdr}
			buf := make([]byte, 1500)
			n := copy(buf, key.raw)
			track.route(l, buf[:n], time.Now(), &pkt) // starts every down-track
			n = copy(buf, inter.raw)
			raw := buf[:n]
			sn, ts, pic := inter.sn, inter.ts, inter.pic

			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				// The next frame: the publisher's numbers move on as a real stream's do.
				sn++
				ts += 3000
				pic = (pic + 1) & 0x7fff
				binary.BigEndian.PutUint16(raw[2:], sn)
				binary.BigEndian.PutUint32(raw[4:], ts)
				binary.BigEndian.PutUint16(raw[rtpHeaderSize+2:], 0x8000|pic)
				track.route(l, raw, time.Now(), &pkt) // the forwarding loop reads the clock per packet
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
				info := TrackInfo{ID: "t", Participant: "p", Kind: webrtc.RTPCodecTypeVideo, Codec: webrtc.MimeTypeVP8}
				track := newTrack(info, "1", vp8Codec, func([]rtcp.Packet) error { return nil }, zap.NewNop())
				l := &layer{index: 0, rid: "q", ssrc: 1, cache: &rtc.PacketCache{}}
				track.layers[0].Store(l)
				writers := make([]*sockWriter, subs)
				for i := range subs {
					c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
					if err != nil {
						b.Fatal(err)
					}
					defer c.Close()
					batch := rtc.NewBatcher(path)
					d := newDownTrack(track, &Participant{log: zap.NewNop(), batch: batch})
					writers[i] = &sockWriter{c: rtc.NewBatchConn(c, batch), to: to}
					d.writer, d.ssrc, d.pt = writers[i], uint32(100+i), subPT
					track.addDownTrack(d)
				}
				b.Cleanup(func() { track.close(); l.fanout.stop() })

				src := vp8Source{ssrc: 1, sn: 1, ts: 1, pic: 1, width: 320, height: 180, size: 1100}
				key := src.frame(true, 0, 1)[0]
				inter := src.frame(false, 0, 1)[0]
				var hdr rtp.Header
				pkt := packet{layer: 0, header: &hdr}
				buf := make([]byte, 1500)
				n := copy(buf, key.raw)
				track.route(l, buf[:n], time.Now(), &pkt)
				n = copy(buf, inter.raw)
				raw := buf[:n]
				sn, ts, pic := inter.sn, inter.ts, inter.pic

				b.SetBytes(int64(len(raw)))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if i%pass == 0 {
						l.fanout.open()
					}
					sn++
					ts += 3000
					pic = (pic + 1) & 0x7fff
					binary.BigEndian.PutUint16(raw[2:], sn)
					binary.BigEndian.PutUint32(raw[4:], ts)
					binary.BigEndian.PutUint16(raw[rtpHeaderSize+2:], 0x8000|pic)
					track.route(l, raw, time.Now(), &pkt)
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
