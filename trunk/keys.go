package trunk

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/pion/srtp/v3"
)

const profile = srtp.ProtectionProfileAeadAes128Gcm

// replayWindow is wider than Pion's default of 64 so that a packet resent
// after ten NACKs (200 ms) is still inside it at high packet rates.
const replayWindow = 1024

// directionKeys derives the SRTP master key and salt of the direction from
// -> to. The direction is in the HKDF info, so the two directions of a pair
// get unrelated keys from one shared secret: the same SSRC and sequence
// number sent both ways never reuse a GCM nonce under one key.
func directionKeys(shared []byte, from, to string) (key, salt []byte, err error) {
	keyLen, err := profile.KeyLen()
	if err != nil {
		return nil, nil, err
	}
	saltLen, err := profile.SaltLen()
	if err != nil {
		return nil, nil, err
	}
	km, err := hkdf.Key(sha256.New, shared, nil, "switchboard trunk "+from+"->"+to, keyLen+saltLen)
	if err != nil {
		return nil, nil, err
	}
	return km[:keyLen], km[keyLen:], nil
}

// checkID refuses ids that would make two directions' HKDF info equal
// ("a->b" to "c" and "a" to "b->c").
func checkID(id string) error {
	if id == "" || strings.Contains(id, "->") {
		return fmt.Errorf("trunk: node id %q: empty or contains \"->\"", id)
	}
	return nil
}

// contexts makes the send and receive SRTP contexts between self and peer.
func contexts(priv *ecdh.PrivateKey, self, peer string, peerPublicKey []byte) (send, recv *srtp.Context, err error) {
	pub, err := ecdh.X25519().NewPublicKey(peerPublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("trunk: public key of %s: %w", peer, err)
	}
	// ECDH refuses low-order points, whose shared secret an attacker knows.
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("trunk: key agreement with %s: %w", peer, err)
	}
	sk, ss, err := directionKeys(shared, self, peer)
	if err != nil {
		return nil, nil, err
	}
	rk, rs, err := directionKeys(shared, peer, self)
	if err != nil {
		return nil, nil, err
	}
	send, err = srtp.CreateContext(sk, ss, profile)
	if err != nil {
		return nil, nil, err
	}
	recv, err = srtp.CreateContext(rk, rs, profile,
		srtp.SRTPReplayProtection(replayWindow), srtp.SRTCPReplayProtection(replayWindow))
	if err != nil {
		return nil, nil, err
	}
	return send, recv, nil
}

var errSelf = errors.New("trunk: a node cannot connect to itself")
