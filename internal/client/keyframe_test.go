package client

import "testing"

func TestVP8KeyframeStart(t *testing.T) {
	key, inter := []byte{0x50, 0x02, 0x00}, []byte{0x51, 0x02, 0x00}
	cat := func(a, b []byte) []byte { return append(append([]byte{}, a...), b...) }
	tests := []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"key, no extensions", cat([]byte{0x10}, key), true},
		{"inter, no extensions", cat([]byte{0x10}, inter), false},
		{"key, not the frame's start", cat([]byte{0x00}, key), false},
		{"key, partition 1", cat([]byte{0x11}, key), false},
		{"key behind I L T K, 15-bit PictureID", cat([]byte{0x90, 0xf0, 0x81, 0x23, 0x07, 0x41}, key), true},
		{"inter behind I L T K, 7-bit PictureID", cat([]byte{0x90, 0xf0, 0x05, 0x07, 0x41}, inter), false},
		{"descriptor cut short", []byte{0x90, 0x80}, false},
		{"empty", nil, false},
	}
	for _, tc := range tests {
		if got := vp8KeyframeStart(tc.payload); got != tc.want {
			t.Errorf("%s: vp8KeyframeStart(% x) = %v, want %v", tc.name, tc.payload, got, tc.want)
		}
	}
}
