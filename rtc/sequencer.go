package rtc

// Sequencer remembers, for the last SequencerSize packets sent to one
// subscriber, what each outgoing sequence number carried, so that a NACK
// can be answered with exactly the packet that was sent: the same source
// packet from the cache, the same rewritten numbers.
type Sequencer struct {
	slots [SequencerSize]SentPacket
}

// SequencerSize covers about a second of 720p video, like the packet cache.
const SequencerSize = 1024

// SentPacket is what one outgoing sequence number carried.
type SentPacket struct {
	OutSN   uint16
	InSN    uint16
	Layer   int8 // which source (simulcast layer) the packet came from
	Padding bool // inserted by the server; resend as padding
	valid   bool
	TS      uint32
	Munged  Munged // the codec's numbers, as the Munger wrote them
}

// Push records a sent packet.
func (s *Sequencer) Push(p SentPacket) {
	p.valid = true
	s.slots[p.OutSN%SequencerSize] = p
}

// Get returns what outSN carried, if it is still remembered.
func (s *Sequencer) Get(outSN uint16) (SentPacket, bool) {
	p := s.slots[outSN%SequencerSize]
	return p, p.valid && p.OutSN == outSN
}
