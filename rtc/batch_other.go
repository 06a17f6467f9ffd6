//go:build !linux

package rtc

// probeSendPath: batching needs Linux's sendmmsg; elsewhere each datagram
// is sent alone.
func probeSendPath() SendPath { return SendPlain }

type sendScratch struct{}

func (c *BatchConn) sendBatch(_ *Batcher, q []queued) {
	for _, p := range q {
		_, _ = c.UDPConn.WriteToUDPAddrPort(p.b, p.to)
	}
}

func (c *BatchConn) send(uintptr) bool { return true }
