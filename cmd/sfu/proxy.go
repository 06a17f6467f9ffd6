package main

import (
	"net"
	"net/http"
	"strings"
)

// clientIP returns the address of the client behind a request. Behind a
// reverse proxy every connection comes from the proxy, so when the peer is
// one of the trusted proxies the client is the last address in
// X-Forwarded-For that is not a trusted proxy itself; anyone else could
// write any X-Forwarded-For, so theirs is ignored.
func clientIP(trusted []*net.IPNet) func(*http.Request) string {
	isTrusted := func(s string) bool {
		ip := net.ParseIP(strings.TrimSpace(s))
		for _, n := range trusted {
			if ip != nil && n.Contains(ip) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) string {
		peer, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			peer = r.RemoteAddr
		}
		if !isTrusted(peer) {
			return peer
		}
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop := strings.TrimSpace(hops[i])
			if hop == "" {
				continue
			}
			if net.ParseIP(hop) == nil {
				break // garbage: stop believing the header here
			}
			if !isTrusted(hop) {
				return hop
			}
		}
		return peer
	}
}

// localIPs reports whether an IP is this host's: its interface addresses
// and the public IP it announces. The TURN relay forwards only to these.
func localIPs(publicIP string) func(net.IP) bool {
	own := []net.IP{}
	if ip := net.ParseIP(publicIP); ip != nil {
		own = append(own, ip)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				own = append(own, n.IP)
			}
		}
	}
	return func(ip net.IP) bool {
		for _, o := range own {
			if o.Equal(ip) {
				return true
			}
		}
		return false
	}
}
