package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Outbound webhook deliveries, as recorded by outbound.Hub for the
// admin API (GET /v1/webhook-deliveries): the most recent DeliveriesMaxLen
// deliveries of each tenant, each with its status and last error. A tenant's
// records and their order list share a hash tag so that one script may write
// both on a Redis Cluster (keyDeliveries in keys.go).

// Delivery limits.
const (
	// DeliveriesMaxLen is how many deliveries are kept per tenant.
	DeliveriesMaxLen = 1000
	// DeliveriesTTL is how long a tenant's records outlive its last delivery.
	DeliveriesTTL = 7 * 24 * time.Hour
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"   // queued, not attempted yet
	DeliveryRetrying  = "retrying"  // an attempt failed; another is scheduled
	DeliveryDelivered = "delivered" // a 2xx answer
	DeliveryFailed    = "failed"    // given up
)

// Delivery is one notification sent (or being sent) to one webhook URL.
type Delivery struct {
	ID            string    `json:"id"` // the webhook-id header, the same on every attempt
	Tenant        string    `json:"tenant"`
	URL           string    `json:"url"`
	Type          string    `json:"type"` // notification type
	Status        string    `json:"status"`
	Attempts      int       `json:"attempts"`
	LastStatus    int       `json:"last_status,omitempty"` // HTTP status of the last attempt
	LastError     string    `json:"last_error,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
}

// saveDeliveryScript writes a delivery record; a new one goes to the front
// of the order list, and the records pushed off its end are deleted.
// KEYS[1] hash, KEYS[2] order list; ARGV[1] id, ARGV[2] JSON, ARGV[3] max
// length, ARGV[4] TTL ms.
var saveDeliveryScript = redis.NewScript(`
if redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  local old = redis.call('LRANGE', KEYS[2], tonumber(ARGV[3]), -1)
  if #old > 0 then
    for _, id in ipairs(old) do
      redis.call('HDEL', KEYS[1], id)
    end
    redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
`)

// SaveDelivery records d (insert or update by d.ID). A zero UpdatedAt is set
// to now, a zero CreatedAt to UpdatedAt.
func (s *Store) SaveDelivery(ctx context.Context, d Delivery) error {
	if err := checkTenant(d.Tenant); err != nil {
		return fmt.Errorf("save delivery %s: %w", d.ID, err)
	}
	if err := checkID("delivery id", d.ID); err != nil {
		return fmt.Errorf("save delivery for tenant %s: %w", d.Tenant, err)
	}
	if d.UpdatedAt.IsZero() {
		d.UpdatedAt = s.clock()
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = d.UpdatedAt
	}
	raw, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("save delivery %s for tenant %s: %w", d.ID, d.Tenant, err)
	}
	err = saveDeliveryScript.Run(ctx, s.rdb,
		[]string{deliveriesKey(d.Tenant), deliveriesOrderKey(d.Tenant)},
		d.ID, raw, DeliveriesMaxLen, millis(DeliveriesTTL)).Err()
	if err != nil {
		return fmt.Errorf("save delivery %s for tenant %s: %w", d.ID, d.Tenant, err)
	}
	return nil
}

// Deliveries returns up to limit of the tenant's most recent deliveries,
// newest first (limit <= 0 or above DeliveriesMaxLen: DeliveriesMaxLen).
func (s *Store) Deliveries(ctx context.Context, tenant string, limit int) ([]Delivery, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	if limit <= 0 || limit > DeliveriesMaxLen {
		limit = DeliveriesMaxLen
	}
	ids, err := s.rdb.LRange(ctx, deliveriesOrderKey(tenant), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("deliveries of tenant %s: %w", tenant, err)
	}
	out := []Delivery{}
	if len(ids) == 0 {
		return out, nil
	}
	vals, err := s.rdb.HMGet(ctx, deliveriesKey(tenant), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("deliveries of tenant %s: %w", tenant, err)
	}
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		var d Delivery
		if err := json.Unmarshal([]byte(str), &d); err != nil {
			return nil, fmt.Errorf("deliveries of tenant %s: decoding: %w", tenant, err)
		}
		out = append(out, d)
	}
	return out, nil
}
