package rtc

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// receiver collects the datagrams that arrive at one loopback socket.
type receiver struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  [][]byte
	done chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	r := &receiver{conn: c, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 65536)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.got = append(r.got, append([]byte(nil), buf[:n]...))
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = c.Close(); <-r.done })
	return r
}

func (r *receiver) addr() netip.AddrPort { return r.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// wait returns what arrived once n datagrams have, or fails after a second.
func (r *receiver) wait(t *testing.T, n int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		r.mu.Lock()
		got := len(r.got)
		r.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) != n {
		t.Fatalf("%v: %d datagrams arrived, want %d", r.addr(), len(r.got), n)
	}
	return r.got
}

func newSender(t *testing.T, path SendPath) *BatchConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return NewBatchConn(c, NewBatcher(path))
}

// datagram is size bytes: the writer, its sequence number, then a pattern.
func datagram(writer, seq, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, uint32(writer))
	binary.BigEndian.PutUint32(b[4:], uint32(seq))
	for i := 8; i < size; i++ {
		b[i] = byte(seq + i)
	}
	return b
}

func checkDatagram(t *testing.T, b []byte) (writer, seq int) {
	t.Helper()
	writer, seq = int(binary.BigEndian.Uint32(b)), int(binary.BigEndian.Uint32(b[4:]))
	for i := 8; i < len(b); i++ {
		if b[i] != byte(seq+i) {
			t.Fatalf("writer %d datagram %d corrupt at byte %d", writer, seq, i)
		}
	}
	return writer, seq
}

var paths = []SendPath{SendGSO, SendMmsg, SendPlain}

func TestBatchMixedSizesAndDestinations(t *testing.T) {
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			c := newSender(t, path)
			if path == SendGSO && c.b.Path() != SendGSO {
				t.Skip("no GSO in this kernel")
			}
			rs := []*receiver{newReceiver(t), newReceiver(t), newReceiver(t)}
			// Runs of one size to one place (GSO groups), a shorter last
			// one, interleaved destinations, a size larger than before.
			type w struct{ to, size int }
			var plan []w
			for range 3 {
				for range 9 {
					plan = append(plan, w{0, 1100})
				}
				plan = append(plan, w{0, 300}, w{1, 1100}, w{2, 80}, w{1, 1100}, w{1, 1200}, w{2, 80})
			}
			want := make([][]int, len(rs))
			c.b.Hold()
			for i, p := range plan {
				if _, err := c.WriteToAddrPort(datagram(0, i, p.size), rs[p.to].addr()); err != nil {
					t.Fatal(err)
				}
				want[p.to] = append(want[p.to], i)
			}
			c.b.Release()
			if c.b.Path() != path {
				t.Fatalf("path fell back to %v", c.b.Path())
			}
			for i, r := range rs {
				got := r.wait(t, len(want[i]))
				for j, b := range got {
					if _, seq := checkDatagram(t, b); seq != want[i][j] || len(b) != plan[seq].size {
						t.Fatalf("receiver %d datagram %d: seq %d size %d, want seq %d size %d", i, j, seq, len(b),
							want[i][j], plan[want[i][j]].size)
					}
				}
			}
		})
	}
}

// Writers that hold nothing (Pion's RTCP, STUN, DTLS) write at once when
// no pass is open, and leave at the end of one that is.
func TestBatchUnheldWritersNotStranded(t *testing.T) {
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			c := newSender(t, path)
			r := newReceiver(t)
			_, _ = c.WriteTo(datagram(0, 0, 100), net.UDPAddrFromAddrPort(r.addr()))
			r.wait(t, 1)
			c.b.Hold()
			done := make(chan struct{})
			go func() { // another goroutine, as Pion's are
				defer close(done)
				_, _ = c.WriteTo(datagram(0, 1, 100), net.UDPAddrFromAddrPort(r.addr()))
			}()
			<-done
			time.Sleep(20 * time.Millisecond)
			r.mu.Lock()
			early := len(r.got)
			r.mu.Unlock()
			if early != 1 {
				t.Fatalf("%d datagrams arrived while held, want 1", early)
			}
			c.b.Release()
			r.wait(t, 2)
		})
	}
}

// Nested holds: the first release already sends what is queued.
func TestBatchEachReleaseFlushes(t *testing.T) {
	c := newSender(t, SendGSO)
	r := newReceiver(t)
	c.b.Hold()
	c.b.Hold()
	for i := range 3 {
		_, _ = c.WriteToAddrPort(datagram(0, i, 500), r.addr())
	}
	c.b.Release()
	r.wait(t, 3)
	_, _ = c.WriteToAddrPort(datagram(0, 3, 500), r.addr())
	c.b.Release()
	r.wait(t, 4)
}

// More than a batch's worth while held, and a datagram too large for a
// slot, keep their order.
func TestBatchOverflowAndLarge(t *testing.T) {
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			c := newSender(t, path)
			r := newReceiver(t)
			n := maxQueued + 40
			c.b.Hold()
			for i := range n {
				size := 200
				if i == 100 {
					size = 4000
				}
				_, _ = c.WriteToAddrPort(datagram(0, i, size), r.addr())
			}
			c.b.Release()
			for i, b := range r.wait(t, n) {
				if _, seq := checkDatagram(t, b); seq != i {
					t.Fatalf("datagram %d is %d", i, seq)
				}
			}
		})
	}
}

func TestBatchConcurrentWriters(t *testing.T) {
	for _, path := range paths {
		t.Run(path.String(), func(t *testing.T) {
			c := newSender(t, path)
			rs := []*receiver{newReceiver(t), newReceiver(t)}
			const writers, perWriter = 6, 60
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					to := rs[w%len(rs)].addr()
					for i := 0; i < perWriter; {
						hold := w%3 != 0 // some write as Pion's goroutines do
						if hold {
							c.b.Hold()
						}
						for k := 0; k < 4 && i < perWriter; k++ {
							_, _ = c.WriteToAddrPort(datagram(w, i, 100+w*150), to)
							i++
						}
						if hold {
							c.b.Release()
						}
					}
				})
			}
			wg.Wait()
			for i, r := range rs {
				next := map[int]int{}
				for _, b := range r.wait(t, writers/len(rs)*perWriter) {
					w, seq := checkDatagram(t, b)
					if w%len(rs) != i || seq != next[w] {
						t.Fatalf("receiver %d: writer %d datagram %d, want %d", i, w, seq, next[w])
					}
					next[w]++
				}
			}
		})
	}
}

func TestBatchAllocations(t *testing.T) {
	c := newSender(t, SendGSO)
	r := newReceiver(t)
	pkt := datagram(0, 0, 1100)
	to := r.addr()
	allocs := testing.AllocsPerRun(100, func() {
		c.b.Hold()
		for range 8 {
			_, _ = c.WriteToAddrPort(pkt, to)
		}
		c.b.Release()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch", allocs)
	}
}
