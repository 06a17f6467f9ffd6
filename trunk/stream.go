package trunk

import (
	"errors"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/transport/v5/packetio"
	"github.com/pion/webrtc/v4"
)

// streamBufferSize bounds what a slow reader may leave queued: about a
// second of 8 Mbit/s video. Past it packets are dropped, never the socket
// reader blocked, so one stuck subscriber cannot stall the whole trunk.
const streamBufferSize = 1 << 20

// Stream is one relayed stream (one layer of one track) received from a
// peer.
type Stream struct {
	p    *Peer
	ssrc uint32
	rid  string
	buf  *packetio.Buffer

	mu   sync.Mutex
	gaps gapTracker

	closeOnce sync.Once
}

func newStream(p *Peer, ssrc uint32, rid string) *Stream {
	s := &Stream{p: p, ssrc: ssrc, rid: rid, buf: packetio.NewBuffer()}
	s.buf.SetLimitSize(streamBufferSize)
	return s
}

// Read copies the next RTP packet, decrypted, into b; it blocks until one
// arrives, and returns io.EOF once the stream or its peer is closed and the
// queued packets are read. The attributes are always nil: the trunk has no
// interceptors.
func (s *Stream) Read(b []byte) (int, interceptor.Attributes, error) {
	n, _, err := s.buf.Read(b, nil)
	return n, nil, err
}

// SetReadDeadline makes Read return an error past t.
func (s *Stream) SetReadDeadline(t time.Time) error { return s.buf.SetReadDeadline(t) }

// RID is the simulcast layer the caller named for the stream.
func (s *Stream) RID() string { return s.rid }

// SSRC is the trunk SSRC of the stream.
func (s *Stream) SSRC() webrtc.SSRC { return webrtc.SSRC(s.ssrc) }

// Close stops the stream: its packets are dropped from now on, and Read
// returns io.EOF once it has returned those already queued.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.p.removeStream(s)
		s.buf.Close()
	})
	return nil
}

// deliver queues a received packet and appends to nacks the sequence
// numbers to NACK at once because it opened a gap.
func (s *Stream) deliver(pkt []byte, seq uint16, now time.Time, nacks []uint16) []uint16 {
	s.mu.Lock()
	if s.gaps.push(seq, now) {
		nacks = s.gaps.due(nacks, now)
	}
	s.mu.Unlock()
	if _, err := s.buf.Write(pkt, nil); errors.Is(err, packetio.ErrFull) {
		s.p.e.counters.bufferFull.Add(1)
	}
	return nacks
}
