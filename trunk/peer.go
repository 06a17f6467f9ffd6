package trunk

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"go.uber.org/zap"
)

// srInterval is how often each side sends a sender report, from which the
// other's answer gives the RTT.
const srInterval = time.Second

// gcmTagLen is the AEAD_AES_128_GCM authentication tag SRTP appends.
const gcmTagLen = 16

// maxRTPSize bounds a trunk RTP packet. WebRTC keeps packets under the
// path MTU, so a larger one is a caller's bug, not something to fragment.
const maxRTPSize = 4096

// sendBufs holds the buffers RTP packets are built and encrypted in; an
// array pointer, so that Get and Put do not allocate.
var sendBufs = sync.Pool{New: func() any { return new([maxRTPSize]byte) }}

// Peer is the flow between this node and one other node: one SRTP session
// per direction carrying every stream relayed between the two.
type Peer struct {
	e  *Endpoint
	id string

	// sendMu serialises the send context, the packet buffer and the address:
	// an SRTP context is not safe for concurrent use.
	sendMu sync.Mutex
	send   *srtp.Context
	addr   netip.AddrPort
	pub    []byte
	closed bool
	wbuf   []byte
	// highest sequence number sent per trunk SSRC
	sentSeq map[uint32]uint16
	ehdr    rtp.Header
	chdr    rtcp.Header

	// Swapped by Connect when the peer's key changes; used by the read loop only.
	recv atomic.Pointer[srtp.Context]

	mu      sync.RWMutex
	streams map[uint32]*Stream
	// of streams already closed, so that Stats does not go backwards
	closedLost, closedRecovered uint64

	srMu sync.Mutex
	srs  srLog

	// Scratch of the read loop (nackSeqs) and of the ticker (the rest).
	nackSeqs    []uint16
	tickSeqs    []uint16
	tickStreams []*Stream
	nextSR      time.Time

	packetsSent, bytesSent         atomic.Uint64
	packetsReceived, bytesReceived atomic.Uint64
	nacksSent, nacksReceived       atomic.Uint64
	rtt                            atomic.Int64
}

// PeerStats describes the flow with one peer. Bytes are SRTP bytes on the
// wire; packets are RTP packets (RTCP is not counted).
type PeerStats struct {
	PacketsSent, BytesSent         uint64
	PacketsReceived, BytesReceived uint64
	// Packets of this peer's streams found missing from sequence gaps and
	// never received despite the NACKs.
	PacketsLost uint64
	// Packets found missing that arrived later, most of them resent on NACK.
	PacketsRecovered uint64
	// NACK packets (each asking for one or more media packets).
	NACKsSent, NACKsReceived uint64
	// Zero until the first answer to a sender report.
	RTT time.Duration
}

func newPeer(e *Endpoint, id string, addr netip.AddrPort, pub []byte, send, recv *srtp.Context) *Peer {
	p := &Peer{
		e:       e,
		id:      id,
		send:    send,
		addr:    addr,
		pub:     bytes.Clone(pub),
		wbuf:    make([]byte, 1<<16),
		sentSeq: map[uint32]uint16{},
		streams: map[uint32]*Stream{},
	}
	p.recv.Store(recv)
	return p
}

// ID is the peer node's id.
func (p *Peer) ID() string { return p.id }

func (p *Peer) address() netip.AddrPort {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	return p.addr
}

// update takes a new address, and new keys if the peer's key changed: a
// peer that restarted has a new key pair and starts its SRTP state afresh,
// and its streams their sequence numbers.
func (p *Peer) update(addr netip.AddrPort, pub []byte, send, recv *srtp.Context) {
	p.sendMu.Lock()
	p.addr = addr
	rekeyed := !bytes.Equal(pub, p.pub)
	if rekeyed {
		p.pub = bytes.Clone(pub)
		p.send = send
		p.recv.Store(recv)
	}
	p.sendMu.Unlock()
	if !rekeyed {
		return
	}
	p.e.log.Info("trunk peer rekeyed", zap.String("peer", p.id))
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, s := range p.streams {
		s.mu.Lock()
		s.gaps.restart()
		s.mu.Unlock()
	}
}

func (p *Peer) close() {
	p.sendMu.Lock()
	p.closed = true
	p.sendMu.Unlock()
	p.mu.Lock()
	streams := p.streams
	p.streams = nil
	p.mu.Unlock()
	for _, s := range streams {
		s.buf.Close()
	}
}

// WriteRTP sends one RTP packet of a relayed stream with its SSRC replaced
// by ssrc, the trunk SSRC the origin chose for the stream; sequence number
// and timestamp are kept, so that the receiver's NACKs name the origin's
// sequence numbers. payload excludes padding, which h.PaddingSize describes
// (as in Pion's TrackLocalStaticRTP.WriteRTP). It may be called
// concurrently, and does not allocate.
//
// A trunk SSRC must not be reused for another stream during the Endpoint's
// life: the same SSRC and sequence number would reuse a GCM nonce. A
// packet further behind the stream than the receiver's replay window is
// refused with ErrTooOld, which catches most reuses.
func (p *Peer) WriteRTP(ssrc uint32, h *rtp.Header, payload []byte) error {
	hdr := *h
	hdr.SSRC = ssrc
	pad := int(h.PaddingSize)
	if !h.Padding {
		pad = 0
	}
	hdr.Padding = pad > 0
	hl := hdr.MarshalSize()
	n := hl + len(payload) + pad
	if n+gcmTagLen > maxRTPSize {
		return fmt.Errorf("trunk: RTP packet of %d bytes, more than %d", n, maxRTPSize-gcmTagLen)
	}
	bp := sendBufs.Get().(*[maxRTPSize]byte)
	defer sendBufs.Put(bp)
	buf := bp[:]
	if _, err := hdr.MarshalTo(buf); err != nil {
		return err
	}
	copy(buf[hl:], payload)
	if pad > 0 {
		clear(buf[hl+len(payload) : n])
		buf[n-1] = byte(pad)
	}

	// Only the SRTP context needs the lock: concurrent writers make their
	// system calls in parallel.
	p.sendMu.Lock()
	if p.closed {
		p.sendMu.Unlock()
		return ErrClosed
	}
	if hi, ok := p.sentSeq[ssrc]; !ok || int16(h.SequenceNumber-hi) > 0 {
		p.sentSeq[ssrc] = h.SequenceNumber
	} else if int16(h.SequenceNumber-hi) <= -replayWindow {
		p.sendMu.Unlock()
		return ErrTooOld
	}
	// In place: the plaintext is the start of the buffer the ciphertext goes to.
	out, err := p.send.EncryptRTP(buf, buf[:n], &p.ehdr)
	addr := p.addr
	p.sendMu.Unlock()
	if err != nil {
		return err
	}
	if _, err := p.e.conn.WriteToUDPAddrPort(out, addr); err != nil {
		return err
	}
	p.packetsSent.Add(1)
	p.bytesSent.Add(uint64(len(out)))
	return nil
}

// WriteRTCP sends RTCP packets to the peer as one compound SRTCP packet.
func (p *Peer) WriteRTCP(pkts []rtcp.Packet) error {
	raw, err := rtcp.Marshal(pkts)
	if err != nil {
		return err
	}
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	if p.closed {
		return ErrClosed
	}
	out, err := p.send.EncryptRTCP(p.wbuf, raw, &p.chdr)
	if err != nil {
		return err
	}
	_, err = p.e.conn.WriteToUDPAddrPort(out, p.addr)
	return err
}

// RequestKeyframe asks the peer for a keyframe of a stream it sends (PLI).
func (p *Peer) RequestKeyframe(ssrc uint32) error {
	return p.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{SenderSSRC: p.e.controlSSRC, MediaSSRC: ssrc}})
}

// Stream returns the stream the peer sends with that trunk SSRC, creating
// it; rid names the simulcast layer for the caller. Packets for SSRCs
// without a Stream are dropped, so the caller asks for its streams before
// the origin starts sending them. On a disconnected peer the stream is
// already at EOF.
func (p *Peer) Stream(ssrc uint32, rid string) *Stream {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.streams[ssrc]; s != nil {
		return s
	}
	s := newStream(p, ssrc, rid)
	if p.streams == nil {
		s.buf.Close()
		return s
	}
	p.streams[ssrc] = s
	return s
}

func (p *Peer) removeStream(s *Stream) {
	s.mu.Lock()
	lost, recovered := s.gaps.lost, s.gaps.recovered
	s.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.streams[s.ssrc] == s {
		delete(p.streams, s.ssrc)
	}
	p.closedLost += lost
	p.closedRecovered += recovered
}

// Stats returns the flow's counters.
func (p *Peer) Stats() PeerStats {
	st := PeerStats{
		PacketsSent:     p.packetsSent.Load(),
		BytesSent:       p.bytesSent.Load(),
		PacketsReceived: p.packetsReceived.Load(),
		BytesReceived:   p.bytesReceived.Load(),
		NACKsSent:       p.nacksSent.Load(),
		NACKsReceived:   p.nacksReceived.Load(),
		RTT:             time.Duration(p.rtt.Load()),
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	st.PacketsLost, st.PacketsRecovered = p.closedLost, p.closedRecovered
	for _, s := range p.streams {
		s.mu.Lock()
		st.PacketsLost += s.gaps.lost
		st.PacketsRecovered += s.gaps.recovered
		s.mu.Unlock()
	}
	return st
}

func (p *Peer) handleRTP(b []byte, now time.Time) {
	e := p.e
	hl, err := e.rhdr.Unmarshal(b)
	if err != nil || len(b) < hl+gcmTagLen {
		e.counters.malformed.Add(1)
		return
	}
	plain, err := p.recv.Load().DecryptRTP(e.rbuf, b, &e.rhdr)
	if err != nil {
		p.decryptFailed(err)
		return
	}
	p.packetsReceived.Add(1)
	p.bytesReceived.Add(uint64(len(b)))
	ssrc := e.rhdr.SSRC
	p.mu.RLock()
	s := p.streams[ssrc]
	p.mu.RUnlock()
	if s == nil {
		e.counters.noStream.Add(1)
		return
	}
	if seqs := s.deliver(plain, e.rhdr.SequenceNumber, now, p.nackSeqs[:0]); len(seqs) > 0 {
		p.sendNACK(ssrc, seqs)
		p.nackSeqs = seqs[:0]
	}
}

func (p *Peer) decryptFailed(err error) {
	if errors.Is(err, srtp.ErrFailedToVerifyAuthTag) {
		p.e.counters.authFailed.Add(1)
		return
	}
	// The header parsed and the length fits, so what is left is the replay check.
	p.e.counters.replayed.Add(1)
}

func (p *Peer) handleRTCP(b []byte, now time.Time) {
	e := p.e
	if len(b) < 8+gcmTagLen+4 {
		e.counters.malformed.Add(1)
		return
	}
	plain, err := p.recv.Load().DecryptRTCP(e.rbuf, b, nil)
	if err != nil {
		p.decryptFailed(err)
		return
	}
	pkts, err := rtcp.Unmarshal(plain)
	if err != nil {
		e.counters.malformed.Add(1)
		return
	}
	for _, pkt := range pkts {
		switch pk := pkt.(type) {
		case *rtcp.SenderReport:
			p.answer(pk, now)
			p.reports(pk.Reports, now)
		case *rtcp.ReceiverReport:
			p.reports(pk.Reports, now)
		case *rtcp.TransportLayerNack:
			p.nacksReceived.Add(1)
			if f := e.onNACK.Load(); f != nil {
				var seqs []uint16
				for _, pair := range pk.Nacks {
					pair.Range(func(seq uint16) bool {
						seqs = append(seqs, seq)
						return true
					})
				}
				(*f)(p.id, pk.MediaSSRC, seqs)
			}
		case *rtcp.PictureLossIndication:
			p.keyframe(pk.MediaSSRC)
		case *rtcp.FullIntraRequest:
			for _, fir := range pk.FIR {
				p.keyframe(fir.SSRC)
			}
		}
	}
}

func (p *Peer) keyframe(ssrc uint32) {
	if f := p.e.onKeyframe.Load(); f != nil {
		(*f)(p.id, ssrc)
	}
}

// answer replies to a sender report at once, with a receiver report whose
// LSR and DLSR let the sender compute the RTT.
func (p *Peer) answer(sr *rtcp.SenderReport, arrived time.Time) {
	rr := &rtcp.ReceiverReport{
		SSRC: p.e.controlSSRC,
		Reports: []rtcp.ReceptionReport{{
			SSRC:             sr.SSRC,
			LastSenderReport: ntpMiddle(sr.NTPTime),
			Delay:            toShort(time.Since(arrived)),
		}},
	}
	if err := p.WriteRTCP([]rtcp.Packet{rr}); err != nil && !errors.Is(err, ErrClosed) {
		p.e.log.Debug("trunk receiver report", zap.String("peer", p.id), zap.Error(err))
	}
}

func (p *Peer) reports(rs []rtcp.ReceptionReport, arrived time.Time) {
	for _, r := range rs {
		if r.SSRC != p.e.controlSSRC {
			continue
		}
		p.srMu.Lock()
		d, ok := p.srs.rtt(r.LastSenderReport, r.Delay, arrived)
		p.srMu.Unlock()
		if ok {
			p.rtt.Store(int64(d))
		}
	}
}

func (p *Peer) sendSR(now time.Time) {
	ntp := ntpTime(now)
	sr := &rtcp.SenderReport{
		SSRC:        p.e.controlSSRC,
		NTPTime:     ntp,
		PacketCount: uint32(p.packetsSent.Load()),
		OctetCount:  uint32(p.bytesSent.Load()),
	}
	p.srMu.Lock()
	p.srs.add(ntpMiddle(ntp), now)
	p.srMu.Unlock()
	if err := p.WriteRTCP([]rtcp.Packet{sr}); err != nil && !errors.Is(err, ErrClosed) {
		p.e.log.Debug("trunk sender report", zap.String("peer", p.id), zap.Error(err))
	}
}

func (p *Peer) sendNACK(ssrc uint32, seqs []uint16) {
	nack := &rtcp.TransportLayerNack{
		SenderSSRC: p.e.controlSSRC,
		MediaSSRC:  ssrc,
		Nacks:      rtcp.NackPairsFromSequenceNumbers(seqs),
	}
	if err := p.WriteRTCP([]rtcp.Packet{nack}); err != nil {
		if !errors.Is(err, ErrClosed) {
			p.e.log.Debug("trunk NACK", zap.String("peer", p.id), zap.Error(err))
		}
		return
	}
	p.nacksSent.Add(1)
}

// tick runs on the endpoint's ticker: the periodic sender report and the
// NACK retries of every stream.
func (p *Peer) tick(now time.Time) {
	if !now.Before(p.nextSR) {
		p.sendSR(time.Now())
		p.nextSR = now.Add(srInterval)
	}
	p.mu.RLock()
	for _, s := range p.streams {
		p.tickStreams = append(p.tickStreams, s)
	}
	p.mu.RUnlock()
	for _, s := range p.tickStreams {
		s.mu.Lock()
		seqs := s.gaps.due(p.tickSeqs[:0], now)
		s.mu.Unlock()
		if len(seqs) > 0 {
			p.sendNACK(s.ssrc, seqs)
		}
		p.tickSeqs = seqs[:0]
	}
	clear(p.tickStreams)
	p.tickStreams = p.tickStreams[:0]
}
