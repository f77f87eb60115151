package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// ProbeWrite checks that Redis accepts writes: it sets a throwaway key (keyProbe, 10 s TTL) and
// deletes it. The error keeps Redis's answer: READONLY from a read-only replica, NOREPLICAS from
// a primary with too few replicas for its min-replicas-to-write, NOAUTH or WRONGPASS.
func (s *Store) ProbeWrite(ctx context.Context) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	key := keyProbe + hex.EncodeToString(b)
	if err := s.rdb.Set(ctx, key, "1", 10*time.Second).Err(); err != nil {
		return fmt.Errorf("redis write: %w", err)
	}
	if err := s.rdb.Del(ctx, key).Err(); err != nil {
		return fmt.Errorf("redis delete: %w", err)
	}
	return nil
}
