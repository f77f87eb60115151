package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Live events for dashboards: one Redis stream per tenant, written by the
// outbound.Hub of every app instance and read by every instance that
// serves a dashboard (Server-Sent Events), so a dashboard connected to one
// instance sees what another instance did. Stream ids are the SSE event ids:
// a dashboard that reconnects with Last-Event-ID resumes after it (keyEvents
// in keys.go).

// Limits of the event streams.
const (
	// EventsMaxLen is the approximate number of events kept per tenant
	// (XADD MAXLEN ~): how far back a reconnecting dashboard can resume.
	EventsMaxLen = 10_000
	// EventsTTL is how long a tenant's stream outlives its last event.
	EventsTTL = 24 * time.Hour
)

// Stream field names of an event.
const (
	fEventType = "type"
	fEventData = "data"
)

// Event is one entry of a tenant's event stream.
type Event struct {
	ID   string // stream id, "<ms>-<seq>"
	Type string
	Data []byte // JSON
}

// streamIDPattern is a complete or incomplete stream id (XADD/XREAD syntax).
var streamIDPattern = regexp.MustCompile(`^[0-9]{1,20}(-[0-9]{1,20})?$`)

// ValidEventID reports whether id is a stream id ReadEvents accepts as
// afterID (besides "" and "$"): "<ms>" or "<ms>-<seq>", each part a
// 64-bit unsigned number, as Redis requires.
func ValidEventID(id string) bool {
	if !streamIDPattern.MatchString(id) {
		return false
	}
	ms, seq, _ := strings.Cut(id, "-")
	for _, part := range []string{ms, seq} {
		if part == "" {
			continue
		}
		if _, err := strconv.ParseUint(part, 10, 64); err != nil {
			return false
		}
	}
	return true
}

// PublishEvent appends an event to the tenant's stream and returns its id.
func (s *Store) PublishEvent(ctx context.Context, tenant, typ string, data []byte) (string, error) {
	if err := checkTenant(tenant); err != nil {
		return "", fmt.Errorf("publish event: %w", err)
	}
	if err := checkID("event type", typ); err != nil {
		return "", fmt.Errorf("publish event for tenant %s: %w", tenant, err)
	}
	key := eventsKey(tenant)
	var add *redis.StringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		add = p.XAdd(ctx, &redis.XAddArgs{
			Stream: key,
			MaxLen: EventsMaxLen,
			Approx: true,
			ID:     "*",
			Values: []any{fEventType, typ, fEventData, data},
		})
		p.PExpire(ctx, key, EventsTTL)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("publish event %s for tenant %s: %w", typ, tenant, err)
	}
	return add.Val(), nil
}

// ReadEvents returns up to count events of the tenant after the event whose
// id is afterID, oldest first ("0" reads from the start, "$" or "" only
// events published from now on). When there are none it waits up to block
// for one (block <= 0: it does not wait) and returns an empty slice if none
// came. Events trimmed from the stream are skipped silently: a consumer that
// fell EventsMaxLen events behind misses some.
func (s *Store) ReadEvents(ctx context.Context, tenant, afterID string, block time.Duration, count int) ([]Event, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	if afterID == "" {
		afterID = "$"
	}
	if afterID != "$" && !ValidEventID(afterID) {
		return nil, fmt.Errorf("read events of tenant %s: %w: id %q", tenant, ErrInvalid, afterID)
	}
	if count <= 0 {
		count = 100
	}
	if block <= 0 {
		block = -1 // go-redis: no BLOCK argument; 0 would block forever
	} else if block < time.Millisecond {
		block = time.Millisecond
	}
	res, err := s.rdb.XRead(ctx, &redis.XReadArgs{
		Streams: []string{eventsKey(tenant), afterID},
		Count:   int64(count),
		Block:   block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return []Event{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read events of tenant %s after %s: %w", tenant, afterID, err)
	}
	out := []Event{}
	for _, st := range res {
		for _, m := range st.Messages {
			e := Event{ID: m.ID}
			e.Type, _ = m.Values[fEventType].(string)
			if d, ok := m.Values[fEventData].(string); ok {
				e.Data = []byte(d)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// LastEventID returns the id of the tenant's newest event, "0-0" when the
// stream is empty: the position from which to read only events published
// after this call.
func (s *Store) LastEventID(ctx context.Context, tenant string) (string, error) {
	if err := checkTenant(tenant); err != nil {
		return "", fmt.Errorf("last event id: %w", err)
	}
	msgs, err := s.rdb.XRevRangeN(ctx, eventsKey(tenant), "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("last event id of tenant %s: %w", tenant, err)
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}
