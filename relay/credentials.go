package relay

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what TURN REST credentials are
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"go.uber.org/zap"
)

// Credentials are one participant's TURN credentials, in the shape of the
// browser's RTCIceServer.
type Credentials struct {
	URLs       []string
	Username   string
	Credential string
}

// Credentials issues credentials for the participant with the given id.
// They are the time-limited kind of the TURN REST API convention: the
// username is "expiry:id", the password an HMAC of it, so the server keeps
// no state per credential.
func (s *Server) Credentials(id string) Credentials {
	username := itoa(time.Now().Add(s.cfg.TTL).Unix()) + ":" + id
	return Credentials{URLs: s.urls, Username: username, Credential: s.password(username)}
}

func (s *Server) password(username string) string {
	mac := hmac.New(sha1.New, s.secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// authenticate gives pion/turn the key for a request's username; pion checks
// the request's MESSAGE-INTEGRITY with it, so a forged password fails there.
// Expiry is enforced for new allocations only: an allocation that was
// opened in time is refreshed with the same credentials for as long as
// the call lasts.
func (s *Server) authenticate(ra *turn.RequestAttributes) (string, []byte, bool) {
	expiry, id, ok := strings.Cut(ra.Username, ":")
	t, err := strconv.ParseInt(expiry, 10, 64)
	if !ok || err != nil || id == "" {
		return "", nil, false
	}
	if ra.Method == stun.MethodAllocate && time.Now().Unix() > t {
		s.log.Info("turn credentials expired", zap.String("participant", id), zap.Stringer("remote", ra.SrcAddr))
		return "", nil, false
	}
	return id, turn.GenerateAuthKey(ra.Username, ra.Realm, s.password(ra.Username)), true
}
