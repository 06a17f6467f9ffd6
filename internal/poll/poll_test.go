package poll

import (
	"testing"
	"time"
)

func TestUntilReturnsWhenTrue(t *testing.T) {
	n := 0
	Until(t, time.Second, "the third check", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Errorf("checked %d times, want 3", n)
	}
}

type fatal struct {
	testing.TB
	msg string
}

func (f *fatal) Helper()                        {}
func (f *fatal) Fatalf(format string, a ...any) { f.msg = format; panic(f) }

func TestUntilFailsAtTheDeadline(t *testing.T) {
	f := &fatal{TB: t}
	start := time.Now()
	func() {
		defer func() {
			if r := recover(); r != f {
				t.Fatalf("Until did not fail the test (recovered %v)", r)
			}
		}()
		Until(f, 50*time.Millisecond, "never", func() bool { return false })
	}()
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("gave up after %v, before the timeout", d)
	}
}
