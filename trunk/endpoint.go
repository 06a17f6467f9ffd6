package trunk

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/switchboard-sfu/switchboard/rtc"
	"go.uber.org/zap"
)

// ErrClosed is returned by writes to a disconnected peer or a closed endpoint.
var ErrClosed = errors.New("trunk: closed")

// ErrTooOld is returned by WriteRTP for a packet so far behind its stream
// that the receiver's replay protection would refuse it: a resend that
// comes too late, or a trunk SSRC reused (see WriteRTP).
var ErrTooOld = errors.New("trunk: packet behind the replay window")

// packetConn is the part of rtc.BatchConn the endpoint uses; tests wrap
// a *net.UDPConn in one of their own to lose packets.
type packetConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error)
	LocalAddr() net.Addr
	Close() error
}

// tickInterval paces NACK retries and sender reports; half the NACK
// interval, so that a retry is late by at most 10 ms.
const tickInterval = nackInterval / 2

// Endpoint is a node's trunk socket and its flows to the other nodes.
type Endpoint struct {
	id          string
	log         *zap.Logger
	conn        packetConn
	key         *ecdh.PrivateKey
	controlSSRC uint32

	mu     sync.RWMutex
	peers  map[string]*Peer
	byAddr map[netip.AddrPort]*Peer
	closed bool

	onKeyframe atomic.Pointer[func(peerID string, ssrc uint32)]
	onNACK     atomic.Pointer[func(peerID string, ssrc uint32, seqs []uint16)]

	counters endpointCounters

	// Used by the read loop only.
	rbuf []byte
	rhdr rtp.Header

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// EndpointStats counts the packets the endpoint dropped before they reached
// a peer or a stream, for the caller to export.
type EndpointStats struct {
	UnknownSource uint64 // from an address that is no connected peer
	Malformed     uint64 // neither RTP nor RTCP, or truncated
	AuthFailed    uint64 // failed SRTP/SRTCP authentication: wrong key or tampered
	Replayed      uint64 // refused by SRTP replay protection
	NoStream      uint64 // authentic RTP for an SSRC without a Stream
	BufferFull    uint64 // a Stream's reader fell behind
}

type endpointCounters struct {
	unknownSource, malformed, authFailed, replayed, noStream, bufferFull atomic.Uint64
}

// Listen opens the node's trunk socket on addr ("host:port") and makes a
// fresh X25519 key pair, so that a restarted node never reuses keys.
func Listen(id, addr string, log *zap.Logger) (*Endpoint, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("trunk: %w", err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("trunk: %w", err)
	}
	// Each peer sends through a batcher of its own over this socket (see
	// newPeer); the endpoint's is for reading.
	e, err := newEndpoint(id, rtc.NewBatchConn(c, rtc.NewBatcher(rtc.KernelSendPath())), log)
	if err != nil {
		c.Close()
		return nil, err
	}
	return e, nil
}

func newEndpoint(id string, c packetConn, log *zap.Logger) (*Endpoint, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("trunk: %w", err)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("trunk: %w", err)
	}
	e := &Endpoint{
		id:          id,
		log:         log.With(zap.String("trunk", id)),
		conn:        c,
		key:         key,
		controlSSRC: binary.BigEndian.Uint32(b[:]),
		peers:       map[string]*Peer{},
		byAddr:      map[netip.AddrPort]*Peer{},
		rbuf:        make([]byte, 1<<16),
		done:        make(chan struct{}),
	}
	e.wg.Add(2)
	go e.readLoop()
	go e.tickLoop()
	return e, nil
}

// ID is this node's id.
func (e *Endpoint) ID() string { return e.id }

// Addr is the local address of the trunk socket.
func (e *Endpoint) Addr() *net.UDPAddr {
	a, _ := e.conn.LocalAddr().(*net.UDPAddr)
	return a
}

// PublicKey is this node's X25519 public key, for the registry.
func (e *Endpoint) PublicKey() []byte { return e.key.PublicKey().Bytes() }

// OnKeyframeRequest sets the function called when a peer sends a PLI or FIR
// for a stream this node sends it. It runs on the socket's read goroutine,
// so it must not block.
func (e *Endpoint) OnKeyframeRequest(f func(peerID string, ssrc uint32)) {
	e.onKeyframe.Store(&f)
}

// OnNACK sets the function called when a peer asks again for packets of a
// stream this node sends it; the caller resends them from its cache with
// WriteRTP. It runs on the socket's read goroutine, so it must not block.
//
// A resent packet must be the same packet (same payload): SRTP encrypts it
// with the same nonce, harmless for equal plaintexts only.
func (e *Endpoint) OnNACK(f func(peerID string, ssrc uint32, seqs []uint16)) {
	e.onNACK.Store(&f)
}

// Stats returns the endpoint's drop counters.
func (e *Endpoint) Stats() EndpointStats {
	c := &e.counters
	return EndpointStats{
		UnknownSource: c.unknownSource.Load(),
		Malformed:     c.malformed.Load(),
		AuthFailed:    c.authFailed.Load(),
		Replayed:      c.replayed.Load(),
		NoStream:      c.noStream.Load(),
		BufferFull:    c.bufferFull.Load(),
	}
}

// Connect adds a peer node, or updates its address and key. Both nodes must
// connect to each other: packets from a node not connected are dropped.
func (e *Endpoint) Connect(peerID string, addr *net.UDPAddr, peerPublicKey []byte) (*Peer, error) {
	if err := checkID(peerID); err != nil {
		return nil, err
	}
	if peerID == e.id {
		return nil, errSelf
	}
	if addr == nil {
		return nil, fmt.Errorf("trunk: no address for %s", peerID)
	}
	ap := normalize(addr.AddrPort())
	send, recv, err := contexts(e.key, e.id, peerID, peerPublicKey)
	if err != nil {
		return nil, err
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	if other := e.byAddr[ap]; other != nil && other.id != peerID {
		return nil, fmt.Errorf("trunk: %s is already the address of %s", ap, other.id)
	}
	p := e.peers[peerID]
	if p == nil {
		p = newPeer(e, peerID, ap, peerPublicKey, send, recv)
		e.peers[peerID] = p
		e.byAddr[ap] = p
		e.log.Info("trunk peer connected", zap.String("peer", peerID), zap.Stringer("addr", ap))
		return p, nil
	}
	if old := p.address(); old != ap {
		delete(e.byAddr, old)
		e.byAddr[ap] = p
		e.log.Info("trunk peer moved", zap.String("peer", peerID), zap.Stringer("from", old), zap.Stringer("to", ap))
	}
	p.update(ap, peerPublicKey, send, recv)
	return p, nil
}

// Peers returns the connected peers.
func (e *Endpoint) Peers() []*Peer {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Collect(maps.Values(e.peers))
}

// Peer returns the connected peer with that id, or nil.
func (e *Endpoint) Peer(id string) *Peer {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.peers[id]
}

// Disconnect removes a peer: its streams' Read return io.EOF and writes to
// it return ErrClosed.
func (e *Endpoint) Disconnect(peerID string) {
	e.mu.Lock()
	p := e.peers[peerID]
	if p != nil {
		delete(e.peers, peerID)
		delete(e.byAddr, p.address())
	}
	e.mu.Unlock()
	if p != nil {
		p.close()
		e.log.Info("trunk peer disconnected", zap.String("peer", peerID))
	}
}

// Close disconnects every peer, closes the socket and waits for the
// endpoint's goroutines to end.
func (e *Endpoint) Close() error {
	var err error
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		peers := e.peers
		e.peers = map[string]*Peer{}
		e.byAddr = map[netip.AddrPort]*Peer{}
		e.mu.Unlock()
		close(e.done)
		err = e.conn.Close()
		e.wg.Wait()
		for _, p := range peers {
			p.close()
		}
	})
	return err
}

// normalize unmaps IPv4-mapped IPv6 addresses, so that a peer is found
// whether the socket is dual-stack or not.
func normalize(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (e *Endpoint) readLoop() {
	defer e.wg.Done()
	in := make([]byte, 1<<16)
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(in)
		if err != nil {
			select {
			case <-e.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (an ICMP error reported on the socket): keep reading.
			e.log.Debug("trunk read", zap.Error(err))
			continue
		}
		e.handle(in[:n], normalize(from))
	}
}

// isRTCP tells RTCP from RTP as RFC 5761 section 4 does: RTCP packet types
// 192-223 fall where RTP would have payload types 64-95 with the marker bit.
func isRTCP(b []byte) bool { return len(b) >= 2 && b[1] >= 192 && b[1] <= 223 }

func (e *Endpoint) handle(b []byte, from netip.AddrPort) {
	e.mu.RLock()
	p := e.byAddr[from]
	e.mu.RUnlock()
	if p == nil {
		e.counters.unknownSource.Add(1)
		return
	}
	if len(b) < 8 || b[0]>>6 != 2 {
		e.counters.malformed.Add(1)
		return
	}
	if isRTCP(b) {
		p.handleRTCP(b, time.Now())
	} else {
		p.handleRTP(b, time.Now())
	}
}

func (e *Endpoint) tickLoop() {
	defer e.wg.Done()
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	var peers []*Peer
	for {
		select {
		case <-e.done:
			return
		case now := <-t.C:
			e.mu.RLock()
			peers = peers[:0]
			for _, p := range e.peers {
				peers = append(peers, p)
			}
			e.mu.RUnlock()
			for _, p := range peers {
				p.tick(now)
			}
			clear(peers)
		}
	}
}
