package sfu

import (
	"errors"
	"fmt"
	"sync/atomic"

	"go.uber.org/zap"
)

// ErrInternal ends a participant whose own work failed on a bug.
var ErrInternal = errors.New("internal server error")

// panics counts the panics contained (switchboard_panics_total).
var panics atomic.Uint64

// CountPanic counts a panic that another package contained.
func CountPanic() { panics.Add(1) }

// contain is deferred at the top of every goroutine that works for one
// participant: a bug that panics there ends that participant, logged with
// its stack and counted, and the rest of the server runs on.
func (p *Participant) contain(where string) {
	r := recover()
	if r == nil {
		return
	}
	panics.Add(1)
	p.log.Error("panic; removing the participant", zap.String("in", where), zap.Any("panic", r), zap.Stack("stack"))
	// Not inline: leaving waits for this participant's goroutines, of which
	// this may be one.
	go p.room.leave(p, fmt.Errorf("%w in %s: %v", ErrInternal, where, r))
}

// contain is deferred at the top of goroutines that work for no one
// participant (a relayed track's forwarding loop): a panic there is logged
// with its stack and counted, and ends only that goroutine.
func (rs *Rooms) contain(where string) {
	if r := recover(); r != nil {
		panics.Add(1)
		rs.log.Error("panic", zap.String("in", where), zap.Any("panic", r), zap.Stack("stack"))
	}
}
