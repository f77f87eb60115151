package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Compare-and-swap on idempotency records (keyIdem, see keys.go), for a
// caller that claims a key with PutIfAbsent before doing the work and then
// replaces its claim with the result, or deletes it to let a retry redo the
// work. Comparing with the claim (in a script, not GET then SET from the
// client) keeps a caller whose claim expired and was retaken from
// overwriting another caller's record.

// swapIdemScript: KEYS[1] record; ARGV[1] expected, ARGV[2] new value,
// ARGV[3] TTL ms. Returns 1 swapped, 0 not.
var swapIdemScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`)

// deleteIdemScript: KEYS[1] record; ARGV[1] expected. Returns 1 deleted, 0 not.
var deleteIdemScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// SwapIdempotent replaces the tenant's idempotency record key with value
// (TTL ttl from now) if it still holds old, and reports whether it did.
func (s *Store) SwapIdempotent(ctx context.Context, tenant, key string, old, value []byte, ttl time.Duration) (bool, error) {
	if err := checkTenant(tenant); err != nil {
		return false, fmt.Errorf("idempotency key: %w", err)
	}
	if err := checkID("idempotency key", key); err != nil {
		return false, fmt.Errorf("idempotency key for tenant %s: %w", tenant, err)
	}
	if ttl <= 0 {
		return false, fmt.Errorf("idempotency key %s for tenant %s: %w: TTL %v", key, tenant, ErrInvalid, ttl)
	}
	n, err := swapIdemScript.Run(ctx, s.rdb, []string{idemKey(tenant, key)}, old, value, millis(ttl)).Int()
	if err != nil {
		return false, fmt.Errorf("idempotency key %s for tenant %s: %w", key, tenant, err)
	}
	return n == 1, nil
}

// DeleteIdempotent deletes the tenant's idempotency record key if it holds
// old, and reports whether it did.
func (s *Store) DeleteIdempotent(ctx context.Context, tenant, key string, old []byte) (bool, error) {
	if err := checkTenant(tenant); err != nil {
		return false, fmt.Errorf("idempotency key: %w", err)
	}
	if err := checkID("idempotency key", key); err != nil {
		return false, fmt.Errorf("idempotency key for tenant %s: %w", tenant, err)
	}
	n, err := deleteIdemScript.Run(ctx, s.rdb, []string{idemKey(tenant, key)}, old).Int()
	if err != nil {
		return false, fmt.Errorf("idempotency key %s for tenant %s: %w", key, tenant, err)
	}
	return n == 1, nil
}
