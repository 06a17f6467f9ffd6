package trunk

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"testing"

	"github.com/pion/rtp"
)

func TestContextsMatchAcrossPeersAndDifferPerDirection(t *testing.T) {
	a, _ := ecdh.X25519().GenerateKey(rand.Reader)
	b, _ := ecdh.X25519().GenerateKey(rand.Reader)
	aSend, aRecv, err := contexts(a, "a", "b", b.PublicKey().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	bSend, bRecv, err := contexts(b, "b", "a", a.PublicKey().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7, SequenceNumber: 1}, Payload: []byte("hello")}).Marshal()

	enc, err := aSend.EncryptRTP(nil, pkt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if dec, err := bRecv.DecryptRTP(nil, enc, nil); err != nil || !bytes.Equal(dec, pkt) {
		t.Errorf("a->b: %v", err)
	}
	if _, err := aRecv.DecryptRTP(nil, enc, nil); err == nil {
		t.Error("a's own receive context decrypted what a sent: both directions share a key")
	}
	enc, _ = bSend.EncryptRTP(nil, pkt, nil)
	if dec, err := aRecv.DecryptRTP(nil, enc, nil); err != nil || !bytes.Equal(dec, pkt) {
		t.Errorf("b->a: %v", err)
	}
}

func TestContextsRefuseBadKeys(t *testing.T) {
	a, _ := ecdh.X25519().GenerateKey(rand.Reader)
	if _, _, err := contexts(a, "a", "b", []byte("short")); err == nil {
		t.Error("a 5-byte public key was taken")
	}
	// The all-zero point is of low order: its shared secret is known to all.
	if _, _, err := contexts(a, "a", "b", make([]byte, 32)); err == nil {
		t.Error("a low-order public key was taken")
	}
}

func TestCheckID(t *testing.T) {
	for _, id := range []string{"", "a->b"} {
		if checkID(id) == nil {
			t.Errorf("id %q taken", id)
		}
	}
	if err := checkID("node-1.eu"); err != nil {
		t.Error(err)
	}
}
