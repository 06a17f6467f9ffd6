package rtc

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/prometheus/client_golang/prometheus"
)

// SendPath is how datagrams are handed to the kernel.
type SendPath int32

const (
	// SendPlain is one sendto per datagram.
	SendPlain SendPath = iota
	// SendMmsg is one sendmmsg per batch.
	SendMmsg
	// SendGSO is one sendmmsg per batch in which consecutive datagrams of
	// one size to one destination are one message, segmented by the
	// kernel (UDP_SEGMENT) or the NIC.
	SendGSO
)

func (p SendPath) String() string {
	switch p {
	case SendGSO:
		return "gso"
	case SendMmsg:
		return "sendmmsg"
	default:
		return "plain"
	}
}

var (
	probeOnce   sync.Once
	kernelPath  SendPath
	gsoDisabled atomic.Bool // a send with GSO failed: this host's NIC lacks it
)

// KernelSendPath is the best send path the kernel allows, probed once.
func KernelSendPath() SendPath {
	probeOnce.Do(func() { kernelPath = probeSendPath() })
	if kernelPath == SendGSO && gsoDisabled.Load() {
		return SendMmsg
	}
	return kernelPath
}

// A Batcher sends the datagrams its conns are given while it is held in
// batches, when the last hold is released or, under steady load, at each
// release: the packets that one pass of the fan-out writes to a subscriber
// leave in one system call instead of one each.
//
// Pion writes synchronously in the caller's goroutine (RTPSender,
// interceptors, SRTP, ICE, PacketConn.WriteTo), so a forwarding loop that
// holds its subscribers' batchers around a pass has everything it wrote
// queued when it releases them. Writers that hold nothing (RTCP, STUN,
// DTLS and SCTP from Pion's goroutines) write at once, or, while someone
// holds, are queued and leave at the end of that holder's pass: every
// Release flushes the whole queue, so nothing waits for more than one pass
// nor for a timer, and a holder that never lets go of one pass strands
// nothing.
type Batcher struct {
	path SendPath

	mu    sync.Mutex
	holds int
	q     []queued
	slots [][]byte // q[i].b lives in slots[i]
	// grouped and taken are group's scratch.
	grouped []queued
	taken   [maxQueued]bool
	sc      sendScratch
}

type queued struct {
	c  *BatchConn
	to netip.AddrPort
	b  []byte
}

const (
	slotSize = 1500 // larger datagrams skip the queue
	// maxQueued bounds a batch; a fuller queue is sent at once.
	maxQueued = 256
)

// NewBatcher returns a Batcher that uses at most path (the kernel's, if
// lower).
func NewBatcher(path SendPath) *Batcher {
	return &Batcher{path: min(path, KernelSendPath())}
}

// Path is the send path the batcher uses.
func (b *Batcher) Path() SendPath {
	if b.path == SendGSO && gsoDisabled.Load() {
		return SendMmsg
	}
	return b.path
}

// Hold starts a pass: writes queue until the matching Release.
func (b *Batcher) Hold() {
	b.mu.Lock()
	b.holds++
	b.mu.Unlock()
}

// Release ends a pass and sends everything queued, whoever queued it.
func (b *Batcher) Release() {
	b.mu.Lock()
	b.holds--
	if len(b.q) > 0 {
		b.flushLocked()
	}
	b.mu.Unlock()
}

// flushLocked sends the queue, each run of one conn's datagrams together,
// in the order they were written.
func (b *Batcher) flushLocked() {
	q := b.q
	if b.Path() == SendGSO && len(q) > 2 {
		q = b.group(q)
	}
	for len(q) > 0 {
		n := 1
		for n < len(q) && q[n].c == q[0].c {
			n++
		}
		if n == 1 || b.Path() == SendPlain {
			for _, p := range q[:n] {
				_, _ = p.c.UDPConn.WriteToUDPAddrPort(p.b, p.to)
			}
		} else {
			q[0].c.sendBatch(b, q[:n])
		}
		q = q[n:]
	}
	clear(b.q) // drop the conn pointers of closed conns
	clear(b.grouped)
	b.q, b.grouped = b.q[:0], b.grouped[:0]
}

// group reorders q so that each destination's datagrams are consecutive,
// keeping their order: a pass over many subscribers of one socket writes
// theirs interleaved, and only consecutive ones make a GSO message. The
// order between destinations is no one's concern.
func (b *Batcher) group(q []queued) []queued {
	out := b.grouped[:0]
	taken := b.taken[:len(q)]
	clear(taken)
	for i := range q {
		if taken[i] {
			continue
		}
		for j := i; j < len(q); j++ {
			if !taken[j] && q[j].c == q[i].c && q[j].to == q[i].to {
				taken[j] = true
				out = append(out, q[j])
			}
		}
	}
	b.grouped = out
	return out
}

// queue copies p into the next slot; the caller holds mu.
func (b *Batcher) queue(c *BatchConn, p []byte, to netip.AddrPort) {
	i := len(b.q)
	if i == len(b.slots) {
		b.slots = append(b.slots, make([]byte, slotSize))
	}
	s := b.slots[i][:len(p)]
	copy(s, p)
	b.q = append(b.q, queued{c: c, to: to, b: s})
	if len(b.q) == maxQueued {
		b.flushLocked()
	}
}

// BatchConn is a UDP socket whose writes go through a Batcher. It is a
// net.PacketConn, a transport.UDPConn and an ice.AddrPortReaderWriter, so
// the ICE UDP mux and Pion's ICE candidates take it in place of the socket.
type BatchConn struct {
	*net.UDPConn
	b      *Batcher
	raw    syscall.RawConn
	inet6  bool               // an AF_INET6 socket
	sendFn func(uintptr) bool // made once, so sending allocates nothing
}

// NewBatchConn wraps c; its writes go through b.
func NewBatchConn(c *net.UDPConn, b *Batcher) *BatchConn {
	bc := &BatchConn{UDPConn: c, b: b}
	bc.raw, _ = c.SyscallConn()
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		bc.inet6 = true
	}
	bc.sendFn = bc.send
	return bc
}

// Batcher is the batcher the conn's writes go through.
func (c *BatchConn) Batcher() *Batcher { return c.b }

// WriteTo queues p while the batcher is held and sends it at once otherwise.
func (c *BatchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	a, ok := addr.(*net.UDPAddr)
	if !ok {
		return c.UDPConn.WriteTo(p, addr)
	}
	return c.WriteToAddrPort(p, a.AddrPort())
}

// WriteToUDP is WriteTo.
func (c *BatchConn) WriteToUDP(p []byte, addr *net.UDPAddr) (int, error) {
	return c.WriteToAddrPort(p, addr.AddrPort())
}

// WriteToAddrPort is WriteTo without a net.Addr to allocate.
func (c *BatchConn) WriteToAddrPort(p []byte, to netip.AddrPort) (int, error) {
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.holds > 0 && len(p) <= slotSize {
		b.queue(c, p, to)
		return len(p), nil
	}
	if len(b.q) > 0 { // a large datagram while held: keep the order
		b.flushLocked()
	}
	// Under mu: a release's flush must not overtake it, nor it the flush.
	return c.UDPConn.WriteToUDPAddrPort(p, to)
}

// ReadFromAddrPort reads without a net.Addr to allocate.
func (c *BatchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	return c.UDPConn.ReadFromUDPAddrPort(p)
}

// batchNet is a transport.Net whose UDP sockets are BatchConns of one
// Batcher: port-range mode, where each PeerConnection has sockets of its own.
type batchNet struct {
	transport.Net
	b *Batcher
}

func newBatchNet(b *Batcher) (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return &batchNet{Net: n, b: b}, nil
}

func (n *batchNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	// mDNS's multicast socket carries no media, and x/net's ipv4.PacketConn
	// that reads it wants the bare *net.UDPConn.
	if uc, ok := c.(*net.UDPConn); ok && (laddr == nil || !laddr.IP.IsMulticast()) {
		return NewBatchConn(uc, n.b), nil
	}
	return c, nil
}

func (n *batchNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	if uc, ok := c.(*net.UDPConn); ok {
		return NewBatchConn(uc, n.b), nil
	}
	return c, nil
}

// SendPathCollector exports the API's send path as
// switchboard_send_path{path}, 1 for the one in use.
func (a *API) SendPathCollector() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchboard_send_path",
		Help: "How media datagrams are handed to the kernel (1 for the path in use): gso, sendmmsg or plain.",
	}, []string{"path"})
	return sendPathCollector{g, a}
}

type sendPathCollector struct {
	g   *prometheus.GaugeVec
	api *API
}

func (c sendPathCollector) Describe(ch chan<- *prometheus.Desc) { c.g.Describe(ch) }

func (c sendPathCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.api.SendPath()
	for _, p := range []SendPath{SendGSO, SendMmsg, SendPlain} {
		v := 0.0
		if p == now {
			v = 1
		}
		c.g.WithLabelValues(p.String()).Set(v)
	}
	c.g.Collect(ch)
}
