// Package poll waits in tests for a condition that something else makes
// true: a server that starts listening, a message a browser shows. It is
// the one place tests poll, so that each wait has a deadline and says what
// it waited for when it fails. Truthy is the same for a page's JavaScript,
// for the tabs of browsertest and firefoxtest.
package poll

import (
	"context"
	"encoding/json"
	"fmt"
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

// EvalFunc evaluates a JavaScript expression in a page and decodes its JSON
// value into out, as browsertest's and firefoxtest's tabs do.
type EvalFunc func(ctx context.Context, expr string, out any) error

// Truthy evaluates expr with eval every interval until its value is
// truthy, and decodes that value into out (out may be nil). Errors while
// polling, such as a name the page has not defined yet, count as falsy,
// unless gone (may be nil) says the page itself is gone. When ctx ends,
// the error tells the last value or error.
func Truthy(ctx context.Context, eval EvalFunc, gone func() bool, interval time.Duration, expr string, out any) error {
	// The newlines keep a trailing // comment in expr from eating the ")".
	wrapped := "Promise.resolve((\n" + expr + "\n)).then(v => ({ok: !!v, v}))"
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var last string
	for {
		var r struct {
			OK bool            `json:"ok"`
			V  json.RawMessage `json:"v"`
		}
		switch err := eval(ctx, wrapped, &r); {
		case err != nil && gone != nil && gone():
			return fmt.Errorf("waiting for %q: the page is gone: %w", expr, err)
		case err != nil && ctx.Err() != nil:
			// The poll was cut short; keep the value of the one before.
		case err != nil:
			last = "error: " + err.Error()
		case r.OK:
			if out == nil {
				return nil
			}
			return json.Unmarshal(r.V, out)
		case r.V == nil:
			last = "undefined"
		default:
			last = string(r.V)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q: %w; last value: %s", expr, ctx.Err(), last)
		case <-ticker.C:
		}
	}
}
