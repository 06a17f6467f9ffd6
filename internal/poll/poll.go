// Package poll waits in tests for a condition that something else makes
// true: a server that starts listening, a message a browser shows. It is
// the one place tests poll, so that each wait has a deadline and says what
// it waited for when it fails.
package poll

import (
	"testing"
	"time"
)

// Interval is how often Until checks.
const Interval = 20 * time.Millisecond

// Until checks cond every Interval until it is true, and fails the test if
// timeout passes first, naming what it waited for.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(Interval)
	}
}
