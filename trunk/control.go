package trunk

import (
	"errors"
	"time"

	"github.com/pion/rtcp"
	"github.com/switchboard-sfu/switchboard/rtc"
	"go.uber.org/zap"
)

// srInterval is how often each side sends a sender report, from which the
// other's answer gives the RTT.
const srInterval = time.Second

// RequestKeyframe asks the peer for a keyframe of a stream it sends (PLI).
func (p *Peer) RequestKeyframe(ssrc uint32) error {
	return p.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{SenderSSRC: p.e.controlSSRC, MediaSSRC: ssrc}})
}

func (p *Peer) handleRTCP(b []byte, now time.Time) {
	e := p.e
	if len(b) < 8+gcmTagLen+4 {
		e.counters.malformed.Add(1)
		return
	}
	plain, err := p.recv.Load().DecryptRTCP(e.rbuf, b, nil)
	if err != nil {
		p.decryptFailed(err)
		return
	}
	pkts, err := rtcp.Unmarshal(plain)
	if err != nil {
		e.counters.malformed.Add(1)
		return
	}
	for _, pkt := range pkts {
		switch pk := pkt.(type) {
		case *rtcp.SenderReport:
			p.answer(pk, now)
			p.reports(pk.Reports, now)
		case *rtcp.ReceiverReport:
			p.reports(pk.Reports, now)
		case *rtcp.TransportLayerNack:
			p.nacksReceived.Add(1)
			if f := e.onNACK.Load(); f != nil {
				var seqs []uint16
				for _, pair := range pk.Nacks {
					pair.Range(func(seq uint16) bool {
						seqs = append(seqs, seq)
						return true
					})
				}
				(*f)(p.id, pk.MediaSSRC, seqs)
			}
		case *rtcp.PictureLossIndication:
			p.keyframe(pk.MediaSSRC)
		case *rtcp.FullIntraRequest:
			for _, fir := range pk.FIR {
				p.keyframe(fir.SSRC)
			}
		}
	}
}

func (p *Peer) keyframe(ssrc uint32) {
	if f := p.e.onKeyframe.Load(); f != nil {
		(*f)(p.id, ssrc)
	}
}

// answer replies to a sender report at once, with a receiver report whose
// LSR and DLSR let the sender compute the RTT.
func (p *Peer) answer(sr *rtcp.SenderReport, arrived time.Time) {
	rr := &rtcp.ReceiverReport{
		SSRC: p.e.controlSSRC,
		Reports: []rtcp.ReceptionReport{{
			SSRC:             sr.SSRC,
			LastSenderReport: rtc.NTPCompact(sr.NTPTime),
			Delay:            toShort(time.Since(arrived)),
		}},
	}
	if err := p.WriteRTCP([]rtcp.Packet{rr}); err != nil && !errors.Is(err, ErrClosed) {
		p.e.log.Debug("trunk receiver report", zap.String("peer", p.id), zap.Error(err))
	}
}

func (p *Peer) reports(rs []rtcp.ReceptionReport, arrived time.Time) {
	for _, r := range rs {
		if r.SSRC != p.e.controlSSRC {
			continue
		}
		p.srMu.Lock()
		d, ok := p.srs.rtt(r.LastSenderReport, r.Delay, arrived)
		p.srMu.Unlock()
		if ok {
			p.rtt.Store(int64(d))
		}
	}
}

func (p *Peer) sendSR(now time.Time) {
	ntp := rtc.NTPTime(now)
	sr := &rtcp.SenderReport{
		SSRC:        p.e.controlSSRC,
		NTPTime:     ntp,
		PacketCount: uint32(p.packetsSent.Load()),
		OctetCount:  uint32(p.bytesSent.Load()),
	}
	p.srMu.Lock()
	p.srs.add(rtc.NTPCompact(ntp), now)
	p.srMu.Unlock()
	if err := p.WriteRTCP([]rtcp.Packet{sr}); err != nil && !errors.Is(err, ErrClosed) {
		p.e.log.Debug("trunk sender report", zap.String("peer", p.id), zap.Error(err))
	}
}

func (p *Peer) sendNACK(ssrc uint32, seqs []uint16) {
	nack := &rtcp.TransportLayerNack{
		SenderSSRC: p.e.controlSSRC,
		MediaSSRC:  ssrc,
		Nacks:      rtcp.NackPairsFromSequenceNumbers(seqs),
	}
	if err := p.WriteRTCP([]rtcp.Packet{nack}); err != nil {
		if !errors.Is(err, ErrClosed) {
			p.e.log.Debug("trunk NACK", zap.String("peer", p.id), zap.Error(err))
		}
		return
	}
	p.nacksSent.Add(1)
}

// tick runs on the endpoint's ticker: the periodic sender report and the
// NACK retries of every stream.
func (p *Peer) tick(now time.Time) {
	if !now.Before(p.nextSR) {
		p.sendSR(time.Now())
		p.nextSR = now.Add(srInterval)
	}
	p.mu.RLock()
	for _, s := range p.streams {
		p.tickStreams = append(p.tickStreams, s)
	}
	p.mu.RUnlock()
	for _, s := range p.tickStreams {
		s.mu.Lock()
		seqs := s.gaps.due(p.tickSeqs[:0], now)
		s.mu.Unlock()
		if len(seqs) > 0 {
			p.sendNACK(s.ssrc, seqs)
		}
		p.tickSeqs = seqs[:0]
	}
	clear(p.tickStreams)
	p.tickStreams = p.tickStreams[:0]
}
