package clock

import (
	"slices"
	"testing"
	"time"
)

func TestFakeRunsDueFunctionsInOrder(t *testing.T) {
	start := time.Unix(100, 0)
	c := NewFake(start)
	var ran []time.Duration
	record := func() { ran = append(ran, c.Now().Sub(start)) }
	c.AfterFunc(30*time.Millisecond, record)
	c.AfterFunc(10*time.Millisecond, record)
	stopped := c.AfterFunc(20*time.Millisecond, record)
	c.AfterFunc(50*time.Millisecond, record)
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop: want true once, then false")
	}
	c.Advance(40 * time.Millisecond)
	if want := []time.Duration{10 * time.Millisecond, 30 * time.Millisecond}; !slices.Equal(ran, want) {
		t.Errorf("ran at %v, want %v", ran, want)
	}
	if got := c.Now().Sub(start); got != 40*time.Millisecond {
		t.Errorf("Now is start+%v after Advance(40ms)", got)
	}
	c.Advance(10 * time.Millisecond)
	if len(ran) != 3 || ran[2] != 50*time.Millisecond {
		t.Errorf("ran at %v, want the 50 ms function last", ran)
	}
}

func TestFakeFunctionMaySchedule(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	n := 0
	var tick func()
	tick = func() {
		n++
		c.AfterFunc(time.Second, tick)
	}
	c.AfterFunc(time.Second, tick)
	c.Advance(3500 * time.Millisecond)
	if n != 3 {
		t.Errorf("a rescheduling function ran %d times in 3.5 s, want 3", n)
	}
}
