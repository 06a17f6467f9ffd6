// Package webhook POSTs the rooms' events (sfu.Event) as JSON to the
// application's URLs, signed with HMAC-SHA256, from one goroutine with a
// bounded queue: the rooms never wait for a slow or dead receiver.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/switchboard-sfu/switchboard/sfu"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
// keyed with the webhook secret.
const SignatureHeader = "X-Switchboard-Signature"

// Defaults of Config.
const (
	DefaultQueueSize = 1024
	DefaultTries     = 5
	DefaultBackoff   = 500 * time.Millisecond
	DefaultTimeout   = 10 * time.Second
)

// Config is where and how events are sent.
type Config struct {
	URLs   []string
	Secret []byte
	// QueueSize is how many events may wait; when full, the oldest is
	// dropped (and counted).
	QueueSize int
	// Tries per URL and event; Backoff is the wait after the first failed
	// try, doubled after each further one.
	Tries   int
	Backoff time.Duration
	// Timeout of one POST.
	Timeout time.Duration
	// Client sends the requests (default: a new http.Client).
	Client *http.Client
}

// Payload is the JSON body of a webhook.
type Payload struct {
	Event       string       `json:"event"`
	ID          string       `json:"id"`   // unique per event: a receiver may see it twice after a retry
	Time        int64        `json:"time"` // ms since 1970
	Room        string       `json:"room"`
	Participant *Participant `json:"participant,omitempty"`
	Track       *Track       `json:"track,omitempty"`
}

// Participant is who the event is about (the publisher of a track).
type Participant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Track is the track of a track event.
type Track struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Source string `json:"source,omitempty"`
	Codec  string `json:"codec,omitempty"`
	Muted  bool   `json:"muted"`
}

// PayloadOf is the body sent for e.
func PayloadOf(e sfu.Event) Payload {
	p := Payload{Event: string(e.Type), ID: newID(), Time: e.Time.UnixMilli(), Room: e.Room}
	if e.Participant != nil {
		p.Participant = &Participant{ID: e.Participant.ID, Name: e.Participant.Name}
	}
	if e.Track != nil {
		p.Track = &Track{ID: e.Track.ID, Kind: e.Track.Kind.String(), Source: e.Track.Source, Codec: e.Track.Codec, Muted: e.Track.Muted}
	}
	return p
}

// Sign is the value of SignatureHeader for body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header (SignatureHeader's value) signs body.
func Verify(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

var (
	descQueued  = prometheus.NewDesc("switchboard_webhooks_queued", "Webhook events waiting to be sent.", nil, nil)
	descSent    = prometheus.NewDesc("switchboard_webhooks_sent_total", "Webhooks delivered (answered below 500), per URL and event.", nil, nil)
	descDropped = prometheus.NewDesc("switchboard_webhooks_dropped_total", "Webhook events dropped unsent because the queue was full.", nil, nil)
	descFailed  = prometheus.NewDesc("switchboard_webhooks_failed_total", "Webhooks given up on after every try failed, per URL and event.", nil, nil)
)

// Sender queues events and sends them. Its Observe is an sfu.Observer.
type Sender struct {
	cfg Config
	log *zap.Logger

	mu    sync.Mutex
	queue []Payload // a ring of cfg.QueueSize
	head  int
	n     int
	wake  chan struct{} // 1-buffered: the queue is not empty

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	sent, dropped, failed atomic.Uint64
}

// New starts a Sender; Close stops it.
func New(cfg Config, log *zap.Logger) *Sender {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.Tries <= 0 {
		cfg.Tries = DefaultTries
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	s := &Sender{cfg: cfg, log: log, queue: make([]Payload, cfg.QueueSize), wake: make(chan struct{}, 1), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	return s
}

// Observe queues e; it never blocks. When the queue is full the oldest
// event is dropped.
func (s *Sender) Observe(e sfu.Event) { s.enqueue(PayloadOf(e)) }

func (s *Sender) enqueue(p Payload) {
	s.mu.Lock()
	if s.n == len(s.queue) {
		s.queue[s.head] = Payload{}
		s.head = (s.head + 1) % len(s.queue)
		s.n--
		s.dropped.Add(1)
	}
	s.queue[(s.head+s.n)%len(s.queue)] = p
	s.n++
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Sender) next() (Payload, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return Payload{}, false
	}
	p := s.queue[s.head]
	s.queue[s.head] = Payload{}
	s.head = (s.head + 1) % len(s.queue)
	s.n--
	return p, true
}

// Queued is how many events wait.
func (s *Sender) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Dropped is how many events were dropped because the queue was full.
func (s *Sender) Dropped() uint64 { return s.dropped.Load() }

// Failed is how many deliveries were given up after every try.
func (s *Sender) Failed() uint64 { return s.failed.Load() }

// Sent is how many deliveries succeeded.
func (s *Sender) Sent() uint64 { return s.sent.Load() }

// Close stops sending; what is still queued is not sent.
func (s *Sender) Close() {
	s.cancel()
	<-s.done
}

func (s *Sender) run() {
	defer close(s.done)
	for {
		p, ok := s.next()
		if !ok {
			select {
			case <-s.ctx.Done():
				return
			case <-s.wake:
				continue
			}
		}
		body, err := json.Marshal(p)
		if err != nil { // plain fields: cannot fail
			continue
		}
		for _, u := range s.cfg.URLs {
			if s.ctx.Err() != nil {
				return
			}
			s.deliver(u, p, body)
		}
	}
}

// deliver POSTs body to url, retrying network errors and 5xx answers.
func (s *Sender) deliver(url string, p Payload, body []byte) {
	sig := Sign(s.cfg.Secret, body)
	wait := s.cfg.Backoff
	var err error
	for try := 1; try <= s.cfg.Tries; try++ {
		if try > 1 {
			t := time.NewTimer(wait)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			wait *= 2
		}
		if err = s.post(url, body, sig); err == nil {
			s.sent.Add(1)
			return
		}
		if s.ctx.Err() != nil {
			return
		}
	}
	s.failed.Add(1)
	s.log.Warn("webhook not delivered", zap.String("url", url), zap.String("event", p.Event),
		zap.Int("tries", s.cfg.Tries), zap.Error(err))
}

func (s *Sender) post(url string, body []byte, sig string) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Switchboard-Webhook")
	req.Header.Set(SignatureHeader, sig)
	res, err := s.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
	if res.StatusCode >= 500 {
		return fmt.Errorf("answered %s", res.Status)
	}
	if res.StatusCode >= 300 {
		// 4xx: the receiver refuses it; trying again would not help.
		s.log.Warn("webhook refused", zap.String("url", url), zap.String("status", res.Status))
	}
	return nil
}

// Describe implements prometheus.Collector.
func (s *Sender) Describe(ch chan<- *prometheus.Desc) {
	ch <- descQueued
	ch <- descSent
	ch <- descDropped
	ch <- descFailed
}

// Collect implements prometheus.Collector.
func (s *Sender) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(s.Queued()))
	ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(s.Sent()))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(s.Dropped()))
	ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(s.Failed()))
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
