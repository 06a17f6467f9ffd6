package rtc

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"
)

// testPacket is n bytes that identify sn, so a packet returned for the wrong
// number, or mixed from two stores, shows.
func testPacket(sn uint16, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(int(sn)*31 + i)
	}
	if n >= 2 {
		binary.BigEndian.PutUint16(p, sn)
	}
	return p
}

func TestPacketCache(t *testing.T) {
	type store = cacheStore
	type get struct {
		sn    uint16
		dst   int // capacity offered
		wantN int // 0: not found; otherwise the packet testPacket(sn, wantN)
	}
	tests := []struct {
		name   string
		stores []store
		gets   []get
	}{
		{
			name:   "empty cache has nothing, not even number 0",
			stores: nil,
			gets:   []get{{0, 1500, 0}, {1, 1500, 0}, {65535, 1500, 0}},
		},
		{
			name:   "stored packet comes back",
			stores: []store{{100, 1200}},
			gets:   []get{{100, 1500, 1200}, {100, 1200, 1200}},
		},
		{
			name:   "numbers never stored",
			stores: []store{{100, 1200}, {102, 50}},
			gets:   []get{{101, 1500, 0}, {99, 1500, 0}, {103, 1500, 0}},
		},
		{
			name:   "same slot, other number",
			stores: []store{{100, 1200}},
			gets:   []get{{100 + PacketCacheSize, 1500, 0}, {100 + 65536 - PacketCacheSize, 1500, 0}},
		},
		{
			name:   "evicted one cache size later",
			stores: []store{{100, 1200}, {100 + PacketCacheSize, 300}},
			gets:   []get{{100, 1500, 0}, {100 + PacketCacheSize, 1500, 300}},
		},
		{
			name:   "a full window is kept",
			stores: window(1000, PacketCacheSize),
			gets: []get{
				{1000, 1500, windowLen(1000)},
				{1000 + PacketCacheSize - 1, 1500, windowLen(1000 + PacketCacheSize - 1)},
				{1000 + PacketCacheSize, 1500, 0},
				{999, 1500, 0},
			},
		},
		{
			name:   "window sliding past the end keeps the newest only",
			stores: window(1000, PacketCacheSize+10),
			gets: []get{
				{1000, 1500, 0},
				{1009, 1500, 0},
				{1010, 1500, windowLen(1010)},
				{1000 + PacketCacheSize + 9, 1500, windowLen(1000 + PacketCacheSize + 9)},
			},
		},
		{
			// 65536 is a multiple of the cache size, so slots stay in step
			// across the wrap.
			name:   "window across the sequence number wrap",
			stores: window(65400, PacketCacheSize),
			gets: []get{
				{65400, 1500, windowLen(65400)},
				{65535, 1500, windowLen(65535)},
				{0, 1500, windowLen(0)},
				{1, 1500, windowLen(1)},
				{PacketCacheSize - 137, 1500, windowLen(PacketCacheSize - 137)},
				{PacketCacheSize - 136, 1500, 0},
				{65399, 1500, 0},
			},
		},
		{
			name:   "evicted across the wrap",
			stores: []store{{65535, 100}, {PacketCacheSize - 1, 200}},
			gets:   []get{{65535, 1500, 0}, {PacketCacheSize - 1, 1500, 200}},
		},
		{
			name:   "newer copy of the same number replaces the old",
			stores: []store{{7, 1000}, {7, 20}},
			gets:   []get{{7, 1500, 20}},
		},
		{
			name:   "dst too small",
			stores: []store{{100, 1200}},
			gets:   []get{{100, 1199, 0}, {100, 0, 0}, {100, 1200, 1200}},
		},
		{
			name:   "largest packet is kept",
			stores: []store{{100, 1500}},
			gets:   []get{{100, 1500, 1500}},
		},
		{
			name:   "packet over 1500 bytes is not stored",
			stores: []store{{100, 1501}, {101, 65535}},
			gets:   []get{{100, 2000, 0}, {101, 70000, 0}},
		},
		{
			name:   "smallest RTP packet",
			stores: []store{{5, 12}},
			gets:   []get{{5, 12, 12}, {5, 11, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c PacketCache
			for _, s := range tt.stores {
				c.Store(s.sn, testPacket(s.sn, s.n))
			}
			for _, g := range tt.gets {
				dst := bytes.Repeat([]byte{0xee}, g.dst)
				n := c.Get(g.sn, dst)
				if n != g.wantN {
					t.Errorf("Get(%d, [%d]byte) = %d, want %d", g.sn, g.dst, n, g.wantN)
					continue
				}
				if want := testPacket(g.sn, g.wantN); !bytes.Equal(dst[:n], want) {
					t.Errorf("Get(%d): bytes differ from what was stored", g.sn)
				}
				// A miss must leave the caller's buffer alone, and a hit
				// must not write past the packet.
				for i := n; i < len(dst); i++ {
					if dst[i] != 0xee {
						t.Errorf("Get(%d) wrote dst[%d] beyond the %d bytes it returned", g.sn, i, n)
						break
					}
				}
			}
		})
	}
}

type cacheStore struct {
	sn uint16
	n  int
}

// window stores n consecutive packets from first on, each with a length
// derived from its number.
func window(first uint16, n int) []cacheStore {
	w := make([]cacheStore, n)
	for i := range w {
		sn := first + uint16(i)
		w[i].sn, w[i].n = sn, windowLen(sn)
	}
	return w
}

// windowLen is at least an RTP header, so no stored packet is empty.
func windowLen(sn uint16) int { return 12 + int(sn)%700 }

// The forwarding loop reads every packet into the same buffer, so Store must
// keep a copy, not the caller's slice.
func TestPacketCacheStoresACopy(t *testing.T) {
	var c PacketCache
	buf := testPacket(42, 1000)
	c.Store(42, buf)
	for i := range buf {
		buf[i] = 0
	}
	dst := make([]byte, 1500)
	n := c.Get(42, dst)
	if n != 1000 || !bytes.Equal(dst[:n], testPacket(42, 1000)) {
		t.Fatalf("Get after the caller reused its buffer: n=%d, bytes changed=%v", n, !bytes.Equal(dst[:n], testPacket(42, 1000)))
	}
}

// One forwarding loop stores while any number of subscribers' RTCP readers
// answer NACKs from the same cache; run under -race. Whatever Get returns must
// be one whole packet of the number asked for, never a torn mix.
func TestPacketCacheConcurrent(t *testing.T) {
	var c PacketCache
	const packets = 20000
	var wg sync.WaitGroup
	done := make(chan struct{})

	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range packets {
			sn := uint16(60000 + i) // wraps
			c.Store(sn, testPacket(sn, 100+i%1200))
		}
	}()
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]byte, 1500)
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				k := (i*7 + g*131) % packets
				sn := uint16(60000 + k)
				n := c.Get(sn, dst)
				if n == 0 {
					continue
				}
				// The length is a function of the number too, so a match
				// proves the slot held this very packet while it was copied.
				if want := testPacket(sn, 100+k%1200); !bytes.Equal(dst[:n], want) {
					t.Errorf("Get(%d) returned %d bytes that are not the packet stored", sn, n)
					return
				}
			}
		}()
	}
	wg.Wait()

	// After the writer is done, the last PacketCacheSize packets are all there.
	dst := make([]byte, 1500)
	for i := packets - PacketCacheSize; i < packets; i++ {
		sn := uint16(60000 + i)
		if n := c.Get(sn, dst); n != 100+i%1200 {
			t.Fatalf("Get(%d) = %d after the writer finished, want %d", sn, n, 100+i%1200)
		}
	}
}

func TestPacketCacheDoesNotAllocate(t *testing.T) {
	c := new(PacketCache)
	pkt := testPacket(1, 1200)
	dst := make([]byte, 1500)
	var sn uint16
	allocs := testing.AllocsPerRun(1000, func() {
		sn++
		c.Store(sn, pkt)
		c.Get(sn, dst)
	})
	if allocs != 0 {
		t.Errorf("Store+Get allocates %v times", allocs)
	}
}
