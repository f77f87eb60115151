package store

import (
	"context"
	"fmt"
	"time"
)

// MarkOnce sets the marker key (keyOnce + key) unless it is set, for ttl, and reports whether
// this call set it: of any number of callers, on any instance, for as long as the marker lives,
// exactly one gets true. The app's journal (app/journal.go) sends a session's
// supervision.ended notification only when it marks "supervision.ended:<session>" first, so a
// replayed end is not notified twice.
func (s *Store) MarkOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := checkID("once key", key); err != nil {
		return false, fmt.Errorf("mark once: %w", err)
	}
	if ttl <= 0 {
		return false, fmt.Errorf("mark once %s: %w: TTL %v", key, ErrInvalid, ttl)
	}
	ok, err := s.rdb.SetNX(ctx, onceKey(key), "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("mark once %s: %w", key, err)
	}
	return ok, nil
}
