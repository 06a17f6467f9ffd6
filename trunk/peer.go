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
	"github.com/switchboard-sfu/switchboard/rtc"
	"go.uber.org/zap"
)

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
	// out is where the peer's packets go: a batcher of its own over the
	// endpoint's socket, as a subscriber's, so that the packets a
	// forwarding pass relays leave together (Hold) and the far node
	// receives a frame in one burst and forwards it in one pass too; and
	// writers to other peers never wait for this peer's sends. A test's
	// conn is used as it is (batch nil).
	out   packetConn
	batch *rtc.Batcher

	// sendMu serialises the send context, the RTCP buffer and the address:
	// an SRTP context is not safe for concurrent use.
	sendMu sync.Mutex
	send   *srtp.Context
	addr   netip.AddrPort
	pub    []byte
	closed bool
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
	authWarned                     atomic.Int64 // unix nanoseconds
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
		sentSeq: map[uint32]uint16{},
		streams: map[uint32]*Stream{},
	}
	p.recv.Store(recv)
	p.out = e.conn
	if bc, ok := e.conn.(*rtc.BatchConn); ok {
		p.batch = rtc.NewBatcher(bc.Batcher().Path())
		p.out = rtc.NewBatchConn(bc.UDPConn, p.batch)
	}
	return p
}

// Hold queues what is sent to the peer until the matching Release:
// bracket one forwarding pass's writes with them.
func (p *Peer) Hold() {
	if p.batch != nil {
		p.batch.Hold()
	}
}

// Release ends a Hold; what was queued leaves in as few system calls as
// the kernel allows (UDP GSO for a run of packets).
func (p *Peer) Release() {
	if p.batch != nil {
		p.batch.Release()
	}
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
		clear(p.sentSeq)
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

	// Only the SRTP context needs sendMu. The send goes through the peer's
	// batcher, which keeps it in order with a pass's queued packets;
	// writers to other peers do not wait for it.
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
	if _, err := p.out.WriteToAddrPort(out, addr); err != nil {
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
	bp := sendBufs.Get().(*[maxRTPSize]byte)
	defer sendBufs.Put(bp)
	// As in WriteRTP, only the SRTCP context needs sendMu.
	p.sendMu.Lock()
	if p.closed {
		p.sendMu.Unlock()
		return ErrClosed
	}
	out, err := p.send.EncryptRTCP(bp[:], raw, &p.chdr)
	addr := p.addr
	p.sendMu.Unlock()
	if err != nil {
		return err
	}
	_, err = p.out.WriteToAddrPort(out, addr)
	return err
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

// authWarnEvery limits the warning for packets that fail authentication:
// a stale key in the registry fails every packet of the flow.
const authWarnEvery = 10 * time.Second

func (p *Peer) decryptFailed(err error) {
	if errors.Is(err, srtp.ErrFailedToVerifyAuthTag) {
		p.e.counters.authFailed.Add(1)
		now := time.Now().UnixNano()
		if last := p.authWarned.Load(); now-last >= int64(authWarnEvery) && p.authWarned.CompareAndSwap(last, now) {
			p.e.log.Warn("trunk packets from the peer's address fail authentication (a stale key, or spoofed)",
				zap.String("peer", p.id), zap.Uint64("total", p.e.counters.authFailed.Load()))
		}
		return
	}
	// The header parsed and the length fits, so what is left is the replay check.
	p.e.counters.replayed.Add(1)
}
