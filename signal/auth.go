package signal

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Grant is what a participant may do: which room it is in, under which
// identity, and whether it may publish media, receive others' media, and
// moderate (admin; for moderation messages).
type Grant struct {
	Identity  string
	Name      string
	Room      string
	Publish   bool
	Subscribe bool
	Admin     bool
}

// openGrant is every participant's grant on a server without tokens.
func openGrant(m Message) Grant {
	return Grant{Name: m.Name, Room: m.Room, Publish: true, Subscribe: true}
}

// permits reports whether the grant allows message m; nil if it does.
func (g Grant) permits(m Message) *Error {
	publishing := m.Type == TypeOffer || (m.Type == TypeCandidate && m.Target == TargetPublisher)
	if publishing && !g.Publish {
		return errorf(CodeForbidden, "your token does not allow publishing")
	}
	if m.Type == TypeModerate && !g.Admin {
		return errorf(CodeForbidden, "your token does not allow moderating the room")
	}
	return nil
}

// Claims are the JWT claims of a join token. The identity is the subject
// ("sub"); an expiry ("exp") is required.
type Claims struct {
	Room      string `json:"room"`
	Name      string `json:"name,omitempty"`
	Publish   bool   `json:"publish,omitempty"`
	Subscribe bool   `json:"subscribe,omitempty"`
	Admin     bool   `json:"admin,omitempty"`
	jwt.RegisteredClaims
}

// MinSecretSize is the shortest secret Auth accepts: HS256 wants a key as
// long as its hash.
const MinSecretSize = 32

// tokenLeeway absorbs clock differences between the server and whatever
// minted the token.
const tokenLeeway = 10 * time.Second

// Auth mints and checks join tokens: JWTs signed with HS256 and a secret
// shared with whatever issues them (the application's backend, or the
// `sfu token` command).
type Auth struct {
	secret []byte
	parser *jwt.Parser
}

// NewAuth returns an Auth for secret.
func NewAuth(secret []byte) (*Auth, error) {
	if len(secret) < MinSecretSize {
		return nil, fmt.Errorf("the token secret must be at least %d bytes", MinSecretSize)
	}
	return &Auth{secret: secret, parser: jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(tokenLeeway),
	)}, nil
}

// Mint signs a token carrying g that expires after ttl.
func (a *Auth) Mint(g Grant, ttl time.Duration) (string, error) {
	now := time.Now()
	c := Claims{Room: g.Room, Name: g.Name, Publish: g.Publish, Subscribe: g.Subscribe, Admin: g.Admin,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   g.Identity,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.secret)
}

// Verify checks a token presented to join room and returns its grant.
func (a *Auth) Verify(token, room string) (Grant, *Error) {
	g, err := a.verify(token)
	if err == nil && g.Room != room {
		return Grant{}, errorf(CodeForbidden, "the join token is for another room")
	}
	return g, err
}

// AllRooms in a token's room claim gives an admin token for the server's
// API the rights of its grant in every room (VerifyAdmin); no one can join
// a room with it.
const AllRooms = "*"

// VerifyAdmin checks a token presented to the server's API and returns its
// grant, whatever room it names (the caller checks Room, which may be
// AllRooms).
func (a *Auth) VerifyAdmin(token string) (Grant, *Error) { return a.verify(token) }

func (a *Auth) verify(token string) (Grant, *Error) {
	if token == "" {
		return Grant{}, errorf(CodeUnauthorized, `this server needs a join token: field "token"`)
	}
	var c Claims
	_, err := a.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.secret, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Grant{}, errorf(CodeTokenExpired, "the join token expired at %s", c.ExpiresAt.UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return Grant{}, errorf(CodeUnauthorized, "the join token's signature is not valid")
	case err != nil:
		return Grant{}, errorf(CodeUnauthorized, "invalid join token: %v", err)
	case c.Subject == "" || c.Room == "":
		return Grant{}, errorf(CodeUnauthorized, `the join token must name an identity ("sub") and a room`)
	}
	g := Grant{Identity: c.Subject, Name: c.Name, Room: c.Room, Publish: c.Publish, Subscribe: c.Subscribe, Admin: c.Admin}
	if g.Name == "" {
		g.Name = g.Identity
	}
	if !validName(g.Name) {
		return Grant{}, errorf(CodeUnauthorized, "the join token's name must be 1-%d printable characters", maxNameLength)
	}
	return g, nil
}
