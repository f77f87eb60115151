package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Dashboard sessions (the browser dashboard's sign-in, package webhooks). A browser signs in
// with an API key once and from then on holds only a random session token, in an HttpOnly
// cookie. Redis keeps the session under the SHA-256 of that token (keyWebSession: the token
// itself, like an API key, is never stored), with the SHA-256 of the API key it was opened
// with, which the edge resolves again on every request, so that revoking the key ends its
// sessions at once.
//
// A session ends at the first of: its absolute end (ExpiresAt), idleTTL without a touch (the
// key's TTL, re-armed by every TouchWebSession but never past ExpiresAt), or
// DeleteWebSession (sign-out).

// WebSession is one signed-in dashboard.
type WebSession struct {
	KeySHA256 string    `json:"key_sha256"` // lower-case hex SHA-256 of the API key signed in with
	CSRF      string    `json:"csrf"`       // the token every state-changing request must carry
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"` // the absolute end, whatever the activity
}

// webSessionKey is the key of the session whose token is token.
func webSessionKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return keyWebSession + hex.EncodeToString(sum[:])
}

// CreateWebSession stores ws under token (a random token of the caller's) for idleTTL, at most
// until ws.ExpiresAt. It fails with ErrInvalid for an empty token, a session without key hash
// or CSRF token, or one that would have ended already at now.
func (s *Store) CreateWebSession(ctx context.Context, token string, ws WebSession, idleTTL time.Duration, now time.Time) error {
	ttl := min(idleTTL, ws.ExpiresAt.Sub(now))
	switch {
	case token == "":
		return fmt.Errorf("create web session: %w: empty token", ErrInvalid)
	case idleTTL <= 0 || ttl <= 0:
		return fmt.Errorf("create web session: %w: it would have ended already", ErrInvalid)
	case ws.KeySHA256 == "" || ws.CSRF == "":
		return fmt.Errorf("create web session: %w: key hash and CSRF token are required", ErrInvalid)
	}
	ws.CreatedAt, ws.ExpiresAt = ws.CreatedAt.UTC(), ws.ExpiresAt.UTC()
	doc, err := json.Marshal(ws)
	if err != nil {
		return fmt.Errorf("create web session: %w", err)
	}
	key := webSessionKey(token)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "doc", doc, "exp", ws.ExpiresAt.UnixMilli())
		p.PExpire(ctx, key, time.Duration(millis(ttl))*time.Millisecond)
		return nil
	})
	if err != nil {
		return fmt.Errorf("create web session: %w", err)
	}
	return nil
}

// touchWebSessionScript returns the session's document and re-arms its idle TTL, never past
// its absolute end; a session past its end is deleted and reads as absent. KEYS[1] the
// session; ARGV[1] now and ARGV[2] the idle TTL, in ms.
var touchWebSessionScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'doc', 'exp')
if not v[1] or not v[2] then
  return false
end
local left = tonumber(v[2]) - tonumber(ARGV[1])
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return false
end
local ttl = tonumber(ARGV[2])
if left < ttl then
  ttl = left
end
redis.call('PEXPIRE', KEYS[1], ttl)
return v[1]
`)

// TouchWebSession returns the session of token, alive at now, and keeps it alive idleTTL more
// (never past its ExpiresAt). A session that does not exist, went idle or is past its end is
// ErrNotFound.
func (s *Store) TouchWebSession(ctx context.Context, token string, idleTTL time.Duration, now time.Time) (WebSession, error) {
	if token == "" || idleTTL <= 0 {
		return WebSession{}, fmt.Errorf("web session: %w: empty token or idle TTL", ErrInvalid)
	}
	raw, err := touchWebSessionScript.Run(ctx, s.rdb, []string{webSessionKey(token)},
		now.UnixMilli(), millis(idleTTL)).Text()
	if errors.Is(err, redis.Nil) {
		return WebSession{}, fmt.Errorf("web session: %w", ErrNotFound)
	}
	if err != nil {
		return WebSession{}, fmt.Errorf("web session: %w", err)
	}
	var ws WebSession
	if err := json.Unmarshal([]byte(raw), &ws); err != nil {
		return WebSession{}, fmt.Errorf("web session: decoding: %w", err)
	}
	return ws, nil
}

// DeleteWebSession ends the session of token (sign-out). Deleting a session that does not
// exist is not an error.
func (s *Store) DeleteWebSession(ctx context.Context, token string) error {
	if token == "" {
		return fmt.Errorf("delete web session: %w: empty token", ErrInvalid)
	}
	if err := s.rdb.Del(ctx, webSessionKey(token)).Err(); err != nil {
		return fmt.Errorf("delete web session: %w", err)
	}
	return nil
}
