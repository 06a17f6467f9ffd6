package rtc

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// probeSendPath asks a throwaway socket whether the kernel knows
// UDP_SEGMENT (Linux 4.18); sendmmsg is older than any kernel Go runs on.
func probeSendPath() SendPath {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return SendMmsg
	}
	defer unix.Close(fd)
	if _, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT); err != nil {
		return SendMmsg
	}
	return SendGSO
}

type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

const (
	// The kernel takes at most 64 segments (UDP_MAX_SEGMENTS) and 64 KiB
	// in one GSO message.
	maxSegments = 64
	maxGSOBytes = 65000
	cmsgSize    = unix.SizeofCmsghdr + 8 // CmsgSpace(2)
)

// sendScratch is the batcher's preallocated sendmmsg arguments.
type sendScratch struct {
	msgs  [maxQueued]mmsghdr
	iovs  [maxQueued]unix.Iovec
	names [maxQueued]unix.RawSockaddrInet6
	cmsgs [maxQueued * cmsgSize]byte
	n     int // messages to send
	sent  int
	errno unix.Errno
}

// sendBatch sends q, one conn's datagrams, with one sendmmsg (more if the
// kernel takes only part), grouping runs for GSO when the path allows.
func (c *BatchConn) sendBatch(b *Batcher, q []queued) {
	s := &b.sc
	gso := b.Path() == SendGSO
	s.n, s.sent = 0, 0
	for i := 0; i < len(q); {
		// A run: same destination, same size; the last may be shorter.
		n, bytes := 1, len(q[i].b)
		if gso {
			for i+n < len(q) && n < maxSegments && q[i+n].to == q[i].to && len(q[i+n].b) <= len(q[i].b) &&
				bytes+len(q[i+n].b) <= maxGSOBytes {
				bytes += len(q[i+n].b)
				n++
				if len(q[i+n-1].b) < len(q[i].b) {
					break
				}
			}
		}
		m := &s.msgs[s.n]
		*m = mmsghdr{}
		for j := range n {
			iov := &s.iovs[i+j]
			iov.Base = &q[i+j].b[0]
			iov.SetLen(len(q[i+j].b))
		}
		m.hdr.Iov = &s.iovs[i]
		m.hdr.SetIovlen(n)
		if !c.putName(&s.names[s.n], q[i].to) {
			i += n // an address family this socket cannot reach
			continue
		}
		m.hdr.Name = (*byte)(unsafe.Pointer(&s.names[s.n]))
		m.hdr.Namelen = unix.SizeofSockaddrInet4
		if c.inet6 {
			m.hdr.Namelen = unix.SizeofSockaddrInet6
		}
		if n > 1 {
			cm := s.cmsgs[s.n*cmsgSize : (s.n+1)*cmsgSize]
			h := (*unix.Cmsghdr)(unsafe.Pointer(&cm[0]))
			h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
			h.SetLen(unix.CmsgLen(2))
			binary.NativeEndian.PutUint16(cm[unix.SizeofCmsghdr:], uint16(len(q[i].b)))
			m.hdr.Control = &cm[0]
			m.hdr.SetControllen(cmsgSize)
		}
		s.n++
		i += n
	}
	for s.sent < s.n {
		s.errno = 0
		if c.raw == nil || c.raw.Write(c.sendFn) != nil {
			return // closed
		}
		if s.errno == 0 {
			continue
		}
		m := &s.msgs[s.sent]
		s.sent++
		if m.hdr.Controllen != 0 && (s.errno == unix.EIO || s.errno == unix.EINVAL) {
			// The device cannot segment: send these one by one, and
			// never ask again.
			gsoDisabled.Store(true)
			c.sendEach(m)
		}
		// Otherwise the datagram is lost, as a failed sendto's would be.
	}
}

// send is the RawConn callback: sendmmsg until done, an error, or the
// socket buffer is full (false: wait until writable).
func (c *BatchConn) send(fd uintptr) bool {
	s := &c.b.sc
	for s.sent < s.n {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.msgs[s.sent])),
			uintptr(s.n-s.sent), 0, 0, 0)
		switch e {
		case 0:
			s.sent += int(r)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			s.errno = e
			return true
		}
	}
	return true
}

// sendEach sends a GSO message's segments as datagrams of their own.
func (c *BatchConn) sendEach(m *mmsghdr) {
	iovs := unsafe.Slice(m.hdr.Iov, m.hdr.Iovlen)
	to := c.nameAddr(m)
	for _, iov := range iovs {
		_, _ = c.UDPConn.WriteToUDPAddrPort(unsafe.Slice(iov.Base, iov.Len), to)
	}
}

// putName writes to as the socket's sockaddr.
func (c *BatchConn) putName(sa *unix.RawSockaddrInet6, to netip.AddrPort) bool {
	ip := to.Addr()
	port := (*[2]byte)(unsafe.Pointer(&sa.Port))
	port[0], port[1] = byte(to.Port()>>8), byte(to.Port())
	if c.inet6 {
		sa.Family, sa.Flowinfo, sa.Scope_id = unix.AF_INET6, 0, 0
		sa.Addr = ip.As16()
		return true
	}
	ip = ip.Unmap()
	if !ip.Is4() {
		return false
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
	sa4.Family, sa4.Addr, sa4.Zero = unix.AF_INET, ip.As4(), [8]byte{}
	return true
}

func (c *BatchConn) nameAddr(m *mmsghdr) netip.AddrPort {
	sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(m.hdr.Name))
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	if c.inet6 {
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
	return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
}
