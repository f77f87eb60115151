package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Claims make sure that, of several app instances sharing one Redis, exactly
// one handles a given call or channel: every instance receives the same
// Stasis events from Asterisk, and the one whose Claim succeeds acts. A claim
// is a key holding its owner's id with a TTL, so a crashed owner's claims
// lapse; the owner extends its claim by claiming it again.

// claimScript takes the claim if it is free, or extends it if owner already
// holds it (so an owner retrying after a lost reply is not locked out).
// KEYS[1] claim key; ARGV[1] owner; ARGV[2] TTL in ms. Returns 1 or 0.
var claimScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if cur then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// releaseScript deletes the claim only if owner holds it (compare-and-delete:
// a GET then DEL from the client could delete a claim that expired and was
// taken by another owner in between). Returns 1 released, 0 no claim,
// -1 held by another owner.
var releaseScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then
  return 0
end
if cur == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return -1
`)

// Claim tries to take key for owner for ttl. It reports true if owner holds
// the claim afterwards (newly taken, or already its own, in which case the
// TTL is reset), false if another owner holds it.
func (s *Store) Claim(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	if err := checkClaim(key, owner, ttl); err != nil {
		return false, fmt.Errorf("claim %s for %s: %w", key, owner, err)
	}
	n, err := claimScript.Run(ctx, s.rdb, []string{claimKey(key)}, owner, millis(ttl)).Int()
	if err != nil {
		return false, fmt.Errorf("claim %s for %s: %w", key, owner, err)
	}
	return n == 1, nil
}

// Release gives up owner's claim on key. Releasing a claim that is not held
// (released or lapsed) is not an error; one held by another owner is left
// alone and ErrNotOwner returned.
func (s *Store) Release(ctx context.Context, key, owner string) error {
	if err := checkClaim(key, owner, time.Millisecond); err != nil {
		return fmt.Errorf("release claim %s for %s: %w", key, owner, err)
	}
	n, err := releaseScript.Run(ctx, s.rdb, []string{claimKey(key)}, owner).Int()
	if err != nil {
		return fmt.Errorf("release claim %s for %s: %w", key, owner, err)
	}
	if n < 0 {
		return fmt.Errorf("release claim %s for %s: %w", key, owner, ErrNotOwner)
	}
	return nil
}

func checkClaim(key, owner string, ttl time.Duration) error {
	if err := checkID("claim key", key); err != nil {
		return err
	}
	if err := checkID("claim owner", owner); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("%w: claim TTL %v", ErrInvalid, ttl)
	}
	return nil
}
