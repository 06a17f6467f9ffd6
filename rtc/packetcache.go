package rtc

import "sync"

// PacketCacheSize is how many packets of a track are kept for retransmission:
// about 1.5 s of 720p video at 2.5 Mbit/s, longer than any NACK worth answering.
const PacketCacheSize = 512

const maxPacketSize = 1500

// PacketCache keeps the last PacketCacheSize RTP packets of one incoming
// stream, indexed by sequence number, so that every subscriber's NACKs are
// answered from one copy. Slots are preallocated: storing never allocates.
type PacketCache struct {
	mu    sync.Mutex
	slots [PacketCacheSize]cacheSlot
}

type cacheSlot struct {
	sn    uint16
	n     int
	valid bool
	buf   [maxPacketSize]byte
}

// Store copies one packet in, evicting the one PacketCacheSize numbers before it.
func (c *PacketCache) Store(sn uint16, pkt []byte) {
	if len(pkt) > maxPacketSize {
		return
	}
	c.mu.Lock()
	s := &c.slots[sn%PacketCacheSize]
	s.sn, s.n, s.valid = sn, copy(s.buf[:], pkt), true
	c.mu.Unlock()
}

// Get copies the packet with this sequence number into dst and returns its
// length, or 0 when it is no longer (or never was) in the cache.
func (c *PacketCache) Get(sn uint16, dst []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[sn%PacketCacheSize]
	if !s.valid || s.sn != sn || len(dst) < s.n {
		return 0
	}
	return copy(dst, s.buf[:s.n])
}
