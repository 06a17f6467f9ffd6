package sfu

import (
	"runtime"
	"sync"

	"github.com/switchboard-sfu/switchboard/rtc"
)

// fanoutChunk is how many down-tracks one goroutine writes per packet
// before the fan-out is shared with helper goroutines. Each write is a few
// microseconds of SRTP and a syscall, so below this the hand-off would cost
// more than it saves.
const fanoutChunk = 24

// fanout writes packets to down-tracks on several cores when a track has
// many subscribers: the forwarding loop writes the first share itself and
// hands the others, in fixed slices so each down-track's packets stay in
// order, to helper goroutines, then waits for them before it reads the next
// packet into the buffer they share. It belongs to one forwarding loop.
//
// A pass holds the subscribers' batchers (rtc.Batcher) from before the
// first write to after the last, so that what it writes to one socket
// leaves in one system call when it ends.
type fanout struct {
	jobs []chan fanoutJob
	wg   sync.WaitGroup
	held []*rtc.Batcher // the open pass's
	// heldFor is the down-track list held last: a pass's packets usually
	// go to the same one.
	heldFor  **DownTrack
	passOpen bool
}

type fanoutJob struct {
	downs []*DownTrack
	pkt   *packet
}

// write forwards pkt to every down-track in downs, in the open pass or,
// without one, a pass of its own.
func (f *fanout) write(pkt *packet, downs []*DownTrack) {
	if f.passOpen {
		f.hold(downs)
		f.writeHeld(pkt, downs)
		return
	}
	f.hold(downs)
	f.writeHeld(pkt, downs)
	f.release()
}

// open starts a pass that spans the packets written until close.
func (f *fanout) open() { f.passOpen = true }

// close ends the pass: what it wrote leaves now.
func (f *fanout) close() {
	f.passOpen = false
	f.release()
}

// hold holds downs' batchers for the pass.
func (f *fanout) hold(downs []*DownTrack) {
	if len(downs) == 0 || (len(f.held) > 0 && &downs[0] == f.heldFor) {
		return // the same subscribers as the pass's last packet
	}
	f.heldFor = &downs[0]
	for _, d := range downs {
		b := d.subscriber.batch
		// Single-port mode: every subscriber shares one; hold it once.
		if b == nil || (len(f.held) > 0 && f.held[len(f.held)-1] == b) {
			continue
		}
		b.Hold()
		f.held = append(f.held, b)
	}
}

// release ends the pass: what it queued leaves now.
func (f *fanout) release() {
	for i, b := range f.held {
		b.Release()
		f.held[i] = nil
	}
	f.held, f.heldFor = f.held[:0], nil
}

func (f *fanout) writeHeld(pkt *packet, downs []*DownTrack) {
	n := min((len(downs)+fanoutChunk-1)/fanoutChunk, runtime.GOMAXPROCS(0))
	if n <= 1 {
		for _, d := range downs {
			d.writeRTP(pkt)
		}
		return
	}
	for len(f.jobs) < n-1 {
		jobs := make(chan fanoutJob)
		f.jobs = append(f.jobs, jobs)
		go f.work(jobs)
	}
	share := (len(downs) + n - 1) / n
	f.wg.Add(n - 1)
	for i := 1; i < n; i++ {
		f.jobs[i-1] <- fanoutJob{downs: downs[min(i*share, len(downs)):min((i+1)*share, len(downs))], pkt: pkt}
	}
	for _, d := range downs[:share] {
		d.writeRTP(pkt)
	}
	f.wg.Wait()
}

func (f *fanout) work(jobs <-chan fanoutJob) {
	for j := range jobs {
		for _, d := range j.downs {
			d.writeRTP(j.pkt)
		}
		f.wg.Done()
	}
}

// stop ends the helper goroutines.
func (f *fanout) stop() {
	for _, j := range f.jobs {
		close(j)
	}
	f.jobs = nil
}
