// Package netlab builds small networks for tests: a network namespace
// joined to the test's own by a veth pair, whose link can be capped in
// bandwidth (tc tbf), made lossy (iptables statistic) or cut off for a
// while (Outage). Programs run in
// the namespace reach the test only over that link, so a subscriber behind
// it sees exactly the impairment the test sets.
//
// It needs root and iproute2/iptables. Without them New skips the test,
// except under CI=true where it fails: CI runs as root and must run these.
package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// Link is a namespace and the veth pair that reaches it.
type Link struct {
	NS     string // namespace name, for `ip netns exec`
	HostIf string // our end of the veth
	HostIP string // our address on it
	PeerIP string // the namespace's address
	peerIf string // the namespace's end of the veth
	moves  int    // addresses given by Readdress
	t      testing.TB
	rules  [][]string // iptables rules to delete at cleanup
	outage [][]string // the rules of an outage in progress
}

var seq atomic.Int32

// New creates a namespace linked to the current one over a fresh /30, and
// removes it when the test ends.
func New(t testing.TB) *Link {
	t.Helper()
	if reason := unavailable(); reason != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("netlab: %s (required under CI=true)", reason)
		}
		t.Skipf("netlab: %s; run as root to include this test", reason)
	}
	n := int(seq.Add(1))
	id := fmt.Sprintf("%d%d", os.Getpid()%10000, n)
	l := &Link{
		NS:     "sb" + id,
		HostIf: "sbh" + id,
		HostIP: fmt.Sprintf("10.213.%d.1", n%250),
		PeerIP: fmt.Sprintf("10.213.%d.2", n%250),
		peerIf: "sbp" + id,
		t:      t,
	}
	peerIf := l.peerIf
	t.Cleanup(l.cleanup)
	steps := [][]string{
		{"ip", "netns", "add", l.NS},
		{"ip", "link", "add", l.HostIf, "type", "veth", "peer", "name", peerIf},
		// No IPv6 link-local addresses: their duplicate address detection
		// ends a second or two after the link comes up, and a browser that
		// sees the address change then aborts its page loads
		// (ERR_NETWORK_CHANGED).
		{"ip", "link", "set", l.HostIf, "addrgenmode", "none"},
		{"ip", "link", "set", peerIf, "addrgenmode", "none"},
		{"ip", "link", "set", peerIf, "netns", l.NS},
		{"ip", "addr", "add", l.HostIP + "/24", "dev", l.HostIf},
		{"ip", "link", "set", l.HostIf, "up"},
		{"ip", "netns", "exec", l.NS, "ip", "addr", "add", l.PeerIP + "/24", "dev", peerIf},
		{"ip", "netns", "exec", l.NS, "ip", "link", "set", peerIf, "up"},
		{"ip", "netns", "exec", l.NS, "ip", "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			t.Fatalf("netlab: %v", err)
		}
	}
	return l
}

func unavailable() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	for _, tool := range []string{"ip", "tc", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not installed"
		}
	}
	return ""
}

// Cap limits what we send towards the namespace to rate (tc syntax, e.g.
// "300kbit"), with a queue of about 200 ms, as a slow access link has.
func (l *Link) Cap(rate string) error {
	return run("tc", "qdisc", "replace", "dev", l.HostIf, "root", "tbf", "rate", rate, "burst", "8kb", "latency", "200ms")
}

// Uncap lifts the bandwidth cap.
func (l *Link) Uncap() error {
	return run("tc", "qdisc", "del", "dev", l.HostIf, "root")
}

// Loss drops each packet we send towards the namespace with probability p.
func (l *Link) Loss(p float64) error { return l.drop("OUTPUT", "-o", p) }

// LossFrom drops each packet the namespace sends us with probability p: an
// impaired uplink.
func (l *Link) LossFrom(p float64) error { return l.drop("INPUT", "-i", p) }

// drop adds a rule to chain dropping packets through our end of the veth
// (iface is -o or -i) with probability p.
func (l *Link) drop(chain, iface string, p float64) error {
	rule := []string{chain, iface, l.HostIf, "-m", "statistic", "--mode", "random",
		"--probability", fmt.Sprintf("%.4f", p), "-j", "DROP"}
	if err := run(append([]string{"iptables", "-A"}, rule...)...); err != nil {
		return err
	}
	l.rules = append(l.rules, rule)
	return nil
}

// ClearLoss removes the loss rules.
func (l *Link) ClearLoss() error {
	var first error
	for _, r := range l.rules {
		if err := run(append([]string{"iptables", "-D"}, r...)...); err != nil && first == nil {
			first = err
		}
	}
	l.rules = nil
	return first
}

// Outage drops every packet between the namespace and us, both ways, until
// Restore: the link stays up and nothing errors, the path simply goes dead,
// as it does when Wi-Fi is lost.
func (l *Link) Outage() error {
	for _, rule := range [][]string{{"INPUT", "-i", l.HostIf, "-j", "DROP"}, {"OUTPUT", "-o", l.HostIf, "-j", "DROP"}} {
		if err := run(append([]string{"iptables", "-I"}, rule...)...); err != nil {
			return err
		}
		l.outage = append(l.outage, rule)
	}
	return nil
}

// Restore ends an outage.
func (l *Link) Restore() error {
	var first error
	for _, r := range l.outage {
		if err := run(append([]string{"iptables", "-D"}, r...)...); err != nil && first == nil {
			first = err
		}
	}
	l.outage = nil
	return first
}

// Readdress gives the namespace's end of the link a new address, as a
// device that moves to another network gets one: what was connected from
// the old address is dead, and the namespace reaches us from the new one.
// PeerIP becomes the new address.
func (l *Link) Readdress() error {
	l.moves++
	ip := fmt.Sprintf("%s.%d", l.PeerIP[:strings.LastIndexByte(l.PeerIP, '.')], 2+l.moves)
	// Deleted first: deleting a subnet's first address deletes the others.
	if err := run(l.Wrap("ip", "addr", "del", l.PeerIP+"/24", "dev", l.peerIf)...); err != nil {
		return err
	}
	if err := run(l.Wrap("ip", "addr", "add", ip+"/24", "dev", l.peerIf)...); err != nil {
		return err
	}
	l.PeerIP = ip
	return nil
}

// Wrap returns argv that runs name with args inside the namespace.
func (l *Link) Wrap(name string, args ...string) []string {
	return append([]string{"ip", "netns", "exec", l.NS, name}, args...)
}

// Script writes an executable that runs binary inside the namespace with
// the arguments it is given, for tools that take a binary path (chromedp).
func (l *Link) Script(binary string) string {
	path := l.t.TempDir() + "/in-" + l.NS
	body := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", l.NS, binary)
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
	return path
}

func (l *Link) cleanup() {
	_ = l.ClearLoss()
	_ = l.Restore()
	_ = run("ip", "link", "del", l.HostIf) // also removes the peer end
	_ = run("ip", "netns", "del", l.NS)
}

func run(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
