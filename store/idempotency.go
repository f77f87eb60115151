package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// putIfAbsentScript stores ARGV[1] with TTL ARGV[2] ms unless the key exists,
// and returns the existing value (nil reply when it stored). A script rather
// than SET NX GET so that it also works on servers older than Redis 7.
var putIfAbsentScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  return cur
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
`)

// PutIfAbsent stores value under the tenant's idempotency key for ttl unless
// the key is already there. It returns created=true when it stored value, and
// otherwise the bytes stored first (for the HTTP API: replay the first
// answer to a retried request with the same Idempotency-Key).
func (s *Store) PutIfAbsent(ctx context.Context, tenant, key string, value []byte, ttl time.Duration) (existing []byte, created bool, err error) {
	if err := checkTenant(tenant); err != nil {
		return nil, false, fmt.Errorf("idempotency key: %w", err)
	}
	if err := checkID("idempotency key", key); err != nil {
		return nil, false, fmt.Errorf("idempotency key for tenant %s: %w", tenant, err)
	}
	if ttl <= 0 {
		return nil, false, fmt.Errorf("idempotency key %s for tenant %s: %w: TTL %v", key, tenant, ErrInvalid, ttl)
	}
	cur, err := putIfAbsentScript.Run(ctx, s.rdb, []string{idemKey(tenant, key)}, value, millis(ttl)).Text()
	if errors.Is(err, redis.Nil) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("idempotency key %s for tenant %s: %w", key, tenant, err)
	}
	return []byte(cur), false, nil
}
