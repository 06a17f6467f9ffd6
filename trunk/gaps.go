package trunk

import "time"

// A missing packet is asked for at once, then every nackInterval, nackTries
// times in all: ten tries over 200 ms outlast a lossy burst on a
// datacentre link, and a packet that late is past the jitter buffer anyway.
const (
	nackInterval = 20 * time.Millisecond
	nackTries    = 10
	// A larger jump is a discontinuity (a long outage, or the origin reusing
	// the SSRC): NACKing hundreds of packets would only add load to a link
	// that is already in trouble, so they are counted lost at once.
	maxGap = 256
	// Caps the work per tick and the memory per stream whatever the loss.
	maxMissing = 512
)

type missingPacket struct {
	seq   uint16
	tries int
	next  time.Time
}

// gapTracker finds sequence gaps in one received stream and schedules the
// NACKs that ask for them. It does no I/O and takes the time as an argument,
// so that it can be tested without sockets or sleeps.
type gapTracker struct {
	started bool
	highest uint16
	// oldest first
	missing []missingPacket

	lost      uint64 // given up on: never arrived after every NACK
	recovered uint64 // arrived after being found missing
}

// push records a received sequence number and reports whether it opened a
// gap, in which case due has NACKs to send now.
func (g *gapTracker) push(seq uint16, now time.Time) bool {
	if !g.started {
		g.started = true
		g.highest = seq
		return false
	}
	d := int16(seq - g.highest)
	switch {
	case d == 0:
		return false
	case d < 0:
		for i := range g.missing {
			if g.missing[i].seq == seq {
				g.missing = append(g.missing[:i], g.missing[i+1:]...)
				g.recovered++
				break
			}
		}
		return false
	}
	gap := int(d) - 1
	g.highest = seq
	if gap == 0 {
		return false
	}
	if gap > maxGap {
		g.lost += uint64(gap)
		return false
	}
	for i := gap; i >= 1; i-- {
		g.missing = append(g.missing, missingPacket{seq: seq - uint16(i), next: now})
	}
	if over := len(g.missing) - maxMissing; over > 0 {
		g.lost += uint64(over)
		g.missing = append(g.missing[:0], g.missing[over:]...)
	}
	return true
}

// due appends to dst the sequence numbers to NACK at now, and gives up on
// those that have had every try and one more interval to arrive.
func (g *gapTracker) due(dst []uint16, now time.Time) []uint16 {
	kept := g.missing[:0]
	for _, m := range g.missing {
		if now.Before(m.next) {
			kept = append(kept, m)
			continue
		}
		if m.tries >= nackTries {
			g.lost++
			continue
		}
		m.tries++
		m.next = now.Add(nackInterval)
		dst = append(dst, m.seq)
		kept = append(kept, m)
	}
	g.missing = kept
	return dst
}

func (g *gapTracker) pending() int { return len(g.missing) }

// restart forgets the sequence numbers but keeps the counts, for a sender
// that started over.
func (g *gapTracker) restart() {
	*g = gapTracker{lost: g.lost, recovered: g.recovered}
}
