package main

import (
	"net"
	"net/http"
	"testing"
)

func TestClientIP(t *testing.T) {
	proxies, err := parseNets([]string{"127.0.0.1", "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	ip := clientIP(proxies)
	cases := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "198.51.100.7:5000", nil, "198.51.100.7"},
		{"direct, header ignored", "198.51.100.7:5000", []string{"203.0.113.1"}, "198.51.100.7"},
		{"behind the proxy", "127.0.0.1:5000", []string{"203.0.113.1"}, "203.0.113.1"},
		{"spoofed first hop", "127.0.0.1:5000", []string{"6.6.6.6, 203.0.113.1"}, "203.0.113.1"},
		{"two trusted proxies", "127.0.0.1:5000", []string{"203.0.113.1", "10.1.2.3"}, "203.0.113.1"},
		{"proxy without header", "10.0.0.9:5000", nil, "10.0.0.9"},
		{"garbage header", "127.0.0.1:5000", []string{"nonsense"}, "127.0.0.1"},
	}
	for _, tc := range cases {
		r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := ip(r); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestLocalIPs(t *testing.T) {
	local := localIPs("203.0.113.10")
	if !local(net.ParseIP("203.0.113.10")) || !local(net.ParseIP("127.0.0.1")) {
		t.Error("the public IP or loopback is not local")
	}
	if local(net.ParseIP("192.0.2.99")) {
		t.Error("a foreign address is local")
	}
}
