package main

import (
	"fmt"
	"time"
)

// rampStep is what one step of a ramp measured, after its settle time.
// Field names are a stable interface for scripts.
type rampStep struct {
	Subscribers int `json:"subscribers"`
	// Streams are the subscribers' received streams that delivered a
	// packet (a video and an audio per publisher and subscriber);
	// StreamsExpected is how many there should be.
	Streams         int `json:"streams"`
	StreamsExpected int `json:"streams_expected"`
	// MissingStreams counts every client's streams, the publishers'
	// included, that delivered nothing since joining.
	MissingStreams int     `json:"missing_streams"`
	FailedJoins    int     `json:"failed_joins"`
	DurationS      float64 `json:"duration_s"`
	// PacketsPerS is what every client received, per second; ForwardedPerS
	// is what the server says it sent (its /metrics).
	PacketsPerS   float64 `json:"packets_per_s"`
	ForwardedPerS float64 `json:"forwarded_per_s"`
	CPUPercent    float64 `json:"server_cpu_percent"`
	// CPUMicrosPerPacket is the server's CPU time per forwarded packet;
	// absent when /metrics had no packet counters.
	CPUMicrosPerPacket *float64 `json:"cpu_us_per_packet,omitempty"`
	LatencyP50MS       float64  `json:"latency_p50_ms"`
	LatencyP99MS       float64  `json:"latency_p99_ms"`
	LossRatio          float64  `json:"loss_ratio"`
	// LoadCPUPercent is the load tool's own CPU, which competes with a
	// server on the same host.
	LoadCPUPercent float64 `json:"load_cpu_percent"`
	// OtherCPUPercent is the rest of this host's CPU during the step (of a
	// core): other work on a shared machine, which distorts latency.
	OtherCPUPercent float64 `json:"other_cpu_percent"`
	// FirstOver, when set, is what the step's first measurement broke; the
	// figures are from a second one (-confirm).
	FirstOver []string `json:"first_over,omitempty"`
	// Over says which limits the step broke; empty when it kept them all.
	Over []string `json:"over_limits"`
}

// rampLimits are where the server stops keeping up.
type rampLimits struct {
	MaxLoss float64       // loss ratio; above it is over
	MaxP99  time.Duration // added latency p99; above it is over
}

// stepOf turns a step's window, filled as a synthetic report is, into the
// step's figures; subStreams are the subscribers' streams receiving.
func stepOf(rep *Report, subscribers, subStreams, subStreamsExpected int) rampStep {
	s := rampStep{
		Subscribers: subscribers, Streams: subStreams, StreamsExpected: subStreamsExpected,
		MissingStreams: max(rep.Streams.Expected-rep.Streams.Receiving, 0), FailedJoins: rep.Clients.Failed,
		DurationS: rep.DurationS, LossRatio: rep.LossRatio,
	}
	if rep.DurationS > 0 {
		s.PacketsPerS = float64(rep.PacketsReceived) / rep.DurationS
		s.LoadCPUPercent = 100 * rep.LoadCPUSeconds / rep.DurationS
	}
	if l := rep.LatencyMS; l != nil {
		s.LatencyP50MS, s.LatencyP99MS = l.P50, l.P99
	}
	if srv := rep.Server; srv != nil {
		s.CPUPercent = srv.CPUPercent
		if rep.DurationS > 0 {
			s.ForwardedPerS = float64(srv.PacketsSent) / rep.DurationS
		}
		if srv.CPUSecondsPer1kPackets != nil {
			us := *srv.CPUSecondsPer1kPackets * 1e3 // CPU-s per 1,000 packets is ms per packet
			s.CPUMicrosPerPacket = &us
		}
	}
	return s
}

// judge fills s.Over with the limits the step broke. A step that lost a
// client or a stream, or delivered nothing, is over too: the server did
// not serve everyone, whatever the figures of the others say.
func (s *rampStep) judge(lim rampLimits) {
	s.Over = []string{}
	if s.LossRatio > lim.MaxLoss {
		s.Over = append(s.Over, fmt.Sprintf("loss %.2f%% > %.2f%%", 100*s.LossRatio, 100*lim.MaxLoss))
	}
	if maxMS := float64(lim.MaxP99) / 1e6; s.LatencyP99MS > maxMS {
		s.Over = append(s.Over, fmt.Sprintf("p99 %.1f ms > %s ms", s.LatencyP99MS, num(maxMS)))
	}
	if s.FailedJoins > 0 {
		s.Over = append(s.Over, fmt.Sprintf("%d clients failed to join", s.FailedJoins))
	}
	if s.MissingStreams > 0 {
		s.Over = append(s.Over, fmt.Sprintf("%d streams received nothing", s.MissingStreams))
	}
	if s.PacketsPerS == 0 {
		s.Over = append(s.Over, "no packets received")
	}
}

// within reports whether a judged step kept every limit.
func (s *rampStep) within() bool { return len(s.Over) == 0 }

// knee is the index of the last step of the run of judged steps that kept
// every limit from the first one on, or -1 when the first step broke one.
// A step within the limits after one over them does not count: past the
// first failure the load is beyond what the server serves, and a lucky
// step there is noise.
func knee(steps []rampStep) int {
	k := -1
	for i := range steps {
		if !steps[i].within() {
			break
		}
		k = i
	}
	return k
}

// nextStep is how many subscribers the next step adds after a step with
// have of them (0: the ramp is over).
func nextStep(last *rampStep, have, step, maxSubscribers int) int {
	if last != nil && !last.within() {
		return 0
	}
	return max(min(step, maxSubscribers-have), 0)
}
