package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serverProbe reads the server's CPU time, memory and packet counters from
// its Prometheus /metrics, or CPU and memory from /proc when the server's
// PID is given (same host).
type serverProbe struct {
	metricsURL string
	pid        int
	http       *http.Client
}

// serverSample is one reading; has* say which parts could be read.
type serverSample struct {
	cpu, rss           float64
	sent, received     float64
	bytesSent          float64
	nacks, retransmits float64
	hasCPU, hasPackets bool
}

func newServerProbe(metricsURL string, pid int) *serverProbe {
	return &serverProbe{metricsURL: metricsURL, pid: pid, http: &http.Client{Timeout: 2 * time.Second}}
}

func (p *serverProbe) source() string {
	if p.pid > 0 {
		return "pid"
	}
	return "metrics"
}

// sample reads the server once. Errors leave parts of the sample unset.
func (p *serverProbe) sample(ctx context.Context) serverSample {
	var s serverSample
	if m, err := p.scrape(ctx); err == nil {
		s.sent, s.hasPackets = m["switchboard_packets_sent_total"]
		s.received = m["switchboard_packets_received_total"]
		s.bytesSent = m["switchboard_bytes_sent_total"]
		s.nacks = m["switchboard_nacks_received_total"]
		s.retransmits = m["switchboard_packets_retransmitted_total"]
		cpu, ok1 := m["process_cpu_seconds_total"]
		rss, ok2 := m["process_resident_memory_bytes"]
		if ok1 && ok2 && p.pid == 0 {
			s.cpu, s.rss, s.hasCPU = cpu, rss, true
		}
	}
	if p.pid > 0 {
		if cpu, rss, err := procStat(p.pid); err == nil {
			s.cpu, s.rss, s.hasCPU = cpu, rss, true
		}
	}
	return s
}

// scrape reads the metrics; several comma-separated URLs (the nodes of a
// cluster) are read and summed.
func (p *serverProbe) scrape(ctx context.Context) (map[string]float64, error) {
	if p.metricsURL == "" {
		return nil, fmt.Errorf("no metrics URL")
	}
	sum := map[string]float64{}
	for _, u := range strings.Split(p.metricsURL, ",") {
		m, err := p.scrapeOne(ctx, u)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			sum[k] += v
		}
	}
	return sum, nil
}

func (p *serverProbe) scrapeOne(ctx context.Context, metricsURL string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", metricsURL, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the samples without labels from the Prometheus text
// format: "name value [timestamp]" lines; comments and labelled samples are
// skipped.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		out[f[0]] = v
	}
	return out, sc.Err()
}

// procStat returns a process's CPU time (user+system, seconds) and resident
// memory (bytes) from /proc.
func procStat(pid int) (cpu, rss float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces and parentheses; fields follow the last ")".
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime 15, rss 24.
	if len(f) < 22 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	pages, _ := strconv.ParseFloat(f[21], 64)
	const clockTicks = 100 // USER_HZ on every Linux architecture Go supports
	return (utime + stime) / clockTicks, pages * float64(os.Getpagesize()), nil
}

// selfCPU is this process's CPU time in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// serverWindow accumulates samples over the measured window.
type serverWindow struct {
	probe             *serverProbe
	first, prev, last serverSample
	maxRSS            float64
	start, prevAt, at time.Time
	started           bool
}

// sample reads the server now (within a second) and adds the reading.
func (w *serverWindow) sample(ctx context.Context, at time.Time) {
	ctx, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
	defer cancel()
	w.add(w.probe.sample(ctx), at)
}

func (w *serverWindow) add(s serverSample, at time.Time) {
	if !w.started {
		w.first, w.start, w.started = s, at, true
		w.last, w.at = s, at
	}
	w.prev, w.prevAt = w.last, w.at
	w.last, w.at = s, at
	if s.hasCPU {
		w.maxRSS = max(w.maxRSS, s.rss)
	}
}

// progress describes the server since the sample before the last.
func (w *serverWindow) progress() string {
	secs := w.at.Sub(w.prevAt).Seconds()
	if !w.last.hasCPU || !w.prev.hasCPU || secs <= 0 {
		return ""
	}
	return fmt.Sprintf("  server %.0f%% cpu %.0f MiB", 100*(w.last.cpu-w.prev.cpu)/secs, w.last.rss/(1<<20))
}

// stats returns the server's share of the report, or nil when nothing of
// the server could be read.
func (w *serverWindow) stats() *ServerStats {
	if !w.started || (!w.first.hasCPU && !w.first.hasPackets) {
		return nil
	}
	s := &ServerStats{Source: w.probe.source()}
	secs := w.at.Sub(w.start).Seconds()
	if w.first.hasCPU && w.last.hasCPU {
		s.CPUSeconds = w.last.cpu - w.first.cpu
		if secs > 0 {
			s.CPUPercent = 100 * s.CPUSeconds / secs
		}
		s.RSSBytes = int64(w.maxRSS)
	}
	if w.first.hasPackets && w.last.hasPackets {
		s.PacketsSent = int64(w.last.sent - w.first.sent)
		s.PacketsReceived = int64(w.last.received - w.first.received)
		s.BytesSent = int64(w.last.bytesSent - w.first.bytesSent)
		s.NACKs = int64(w.last.nacks - w.first.nacks)
		s.Retransmits = int64(w.last.retransmits - w.first.retransmits)
		if s.PacketsSent > 0 && w.first.hasCPU && w.last.hasCPU {
			v := s.CPUSeconds / (float64(s.PacketsSent) / 1000)
			s.CPUSecondsPer1kPackets = &v
		}
	}
	return s
}
