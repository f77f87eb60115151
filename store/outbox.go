package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// The webhook outbox (outbound.Hub): every delivery a notification owes one of its tenant's
// webhook endpoints is an entry here from the moment it is accepted until it is delivered or
// given up, so that neither a restart nor a crash loses it and several instances share the work.
//
// An entry waits in its endpoint's due set, scored by when it is next due. A claim
// (ClaimOutbox) takes the due entries of one endpoint and moves them to the end of their lease:
// an instance that dies holding a claim lets it expire, and whoever claims next takes the
// entry over. The claimant settles the attempt (SettleOutbox): one script writes the delivery
// record and either removes the entry (delivered, failed) or schedules its retry, so a record
// and the outbox never disagree. Times in the outbox are the Redis server's clock (TIME), so
// instances with skewed clocks agree on what is due and when a claim expires.
//
// A tenant's outbox keys and its delivery records (deliveries.go) share the hash tag
// {<tenant>} (keys.go), so the scripts are legal on a Redis Cluster.

// DefaultOutboxCap is the usual bound of one endpoint's entries (AddOutbox's max).
const DefaultOutboxCap = 10_000

// ErrOutboxFull: the endpoint has max entries waiting already; the delivery was not added.
var ErrOutboxFull = errors.New("outbox full")

// OutboxEntry is one delivery waiting in the outbox.
type OutboxEntry struct {
	// Delivery is the delivery's record as of its last attempt (Attempts: the attempts made
	// so far). Its ID is the webhook-id, the same on every attempt, whoever makes it.
	Delivery Delivery `json:"delivery"`
	// Endpoint identifies the endpoint the delivery is for, among its tenant's: its due set.
	Endpoint string `json:"endpoint"`
	// Body is what is POSTed.
	Body []byte `json:"body"`
}

// OutboxClaim is an entry claimed for an attempt.
type OutboxClaim struct {
	OutboxEntry
	// Token is the claim's; only it settles or releases the entry.
	Token string
	// Age is how long ago the entry was added, by the Redis server's clock.
	Age time.Duration
}

// OutboxStats describe all the tenants' outboxes.
type OutboxStats struct {
	Depth  int64         // entries
	Oldest time.Duration // age of the oldest entry (0 when there is none)
}

// outboxLua are the Lua functions the outbox scripts share: the Redis clock in ms, and the
// delivery record write of saveDeliveryScript (deliveries.go).
const outboxLua = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function save_record(hkey, lkey, id, raw, maxlen, ttl)
  if redis.call('HSET', hkey, id, raw) == 1 then
    redis.call('LPUSH', lkey, id)
    local old = redis.call('LRANGE', lkey, maxlen, -1)
    if #old > 0 then
      for _, o in ipairs(old) do
        redis.call('HDEL', hkey, o)
      end
      redis.call('LTRIM', lkey, 0, maxlen - 1)
    end
  end
  redis.call('PEXPIRE', hkey, ttl)
  redis.call('PEXPIRE', lkey, ttl)
end
`

// addOutboxScript adds an entry, due now, and writes its record, unless the delivery exists
// already (in the outbox, or recorded: a retried add whose first try did land).
// KEYS[1] items, [2] queue, [3] due set, [4] endpoints, [5] records hash, [6] records order;
// ARGV[1] id, [2] entry JSON, [3] record JSON, [4] endpoint id, [5] max entries of the
// endpoint, [6] records max length, [7] records TTL ms.
// Returns 1 added, 0 exists already, -1 full.
var addOutboxScript = redis.NewScript(outboxLua + `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[5], ARGV[1]) == 1 then
  return 0
end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then
  return -1
end
local now = now_ms()
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('SADD', KEYS[4], ARGV[4])
save_record(KEYS[5], KEYS[6], ARGV[1], ARGV[3], tonumber(ARGV[6]), ARGV[7])
return 1
`)

// claimOutboxScript claims up to ARGV[1] due entries of one endpoint for ARGV[2] ms with
// token ARGV[3]. KEYS[1] due set, [2] claims, [3] items, [4] queue, [5] endpoints; ARGV[4]
// endpoint id. Returns {ms until the next entry is due (-1: none left), id, entry, age ms, ...}.
var claimOutboxScript = redis.NewScript(outboxLua + `
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {-1}
for _, id in ipairs(ids) do
  local e = redis.call('HGET', KEYS[3], id)
  if e then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
    redis.call('HSET', KEYS[2], id, ARGV[3])
    local added = redis.call('ZSCORE', KEYS[4], id)
    local age = 0
    if added then age = math.max(0, now - tonumber(added)) end
    table.insert(out, id)
    table.insert(out, e)
    table.insert(out, age)
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 2 then
  out[1] = math.max(0, tonumber(first[2]) - now)
elseif redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[5], ARGV[4])
end
return out
`)

// settleOutboxScript ends a claim. KEYS[1] items, [2] queue, [3] due set, [4] claims, [5]
// endpoints, [6] records hash, [7] records order; ARGV[1] id, [2] token, [3] mode ("done":
// remove the entry; "retry": put the entry back, due in ARGV[6] ms; "release": the entry is due
// again now, as it was, nothing recorded), [4] entry JSON, [5] record JSON, [6] retry delay ms,
// [7] endpoint id, [8] records max length, [9] records TTL ms.
//
// Returns 1 settled; 0 the claim is not (or no longer) the token's; 2 the entry is gone and
// its record final (another claimant settled it); 3 the entry is gone and its record is not
// final, so Redis lost it (a restart without persistence): the outcome is recorded anyway, and
// a retry puts the entry back.
var settleOutboxScript = redis.NewScript(outboxLua + `
local id, mode = ARGV[1], ARGV[3]
local now = now_ms()
if redis.call('HEXISTS', KEYS[1], id) == 1 then
  if redis.call('HGET', KEYS[4], id) ~= ARGV[2] then
    return 0
  end
  redis.call('HDEL', KEYS[4], id)
  if mode == 'release' then
    redis.call('ZADD', KEYS[3], now, id)
    return 1
  end
  if mode == 'retry' then
    redis.call('HSET', KEYS[1], id, ARGV[4])
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), id)
  else
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    if redis.call('EXISTS', KEYS[3]) == 0 then
      redis.call('SREM', KEYS[5], ARGV[7])
    end
  end
  save_record(KEYS[6], KEYS[7], id, ARGV[5], tonumber(ARGV[8]), ARGV[9])
  return 1
end
if mode == 'release' then
  return 2
end
local rec = redis.call('HGET', KEYS[6], id)
if rec then
  local ok, d = pcall(cjson.decode, rec)
  if ok and type(d) == 'table' and (d.status == 'delivered' or d.status == 'failed') then
    return 2
  end
end
if mode == 'retry' then
  redis.call('HSET', KEYS[1], id, ARGV[4])
  redis.call('ZADD', KEYS[2], now, id)
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), id)
  redis.call('SADD', KEYS[5], ARGV[7])
end
save_record(KEYS[6], KEYS[7], id, ARGV[5], tonumber(ARGV[8]), ARGV[9])
return 3
`)

// AddOutbox puts e in the outbox, due at once, and records its delivery (e.Delivery, usually
// pending) in the same script. Adding a delivery that exists already (a retry of an add whose
// answer was lost) changes nothing and succeeds. When the endpoint has max entries waiting
// (max <= 0: DefaultOutboxCap) it returns ErrOutboxFull and writes nothing.
func (s *Store) AddOutbox(ctx context.Context, e OutboxEntry, max int) error {
	d := e.Delivery
	if err := checkOutbox(d.Tenant, d.ID, e.Endpoint); err != nil {
		return fmt.Errorf("add to the outbox: %w", err)
	}
	if max <= 0 {
		max = DefaultOutboxCap
	}
	entry, rec, err := outboxJSON(&e, d)
	if err != nil {
		return fmt.Errorf("add %s to the outbox of tenant %s: %w", d.ID, d.Tenant, err)
	}
	// The tenants index first: an entry is never in an outbox the sweep does not know of
	// (but for the moment between the two, a tenant may be listed with nothing in it).
	if err := s.rdb.SAdd(ctx, keyOutboxTenants, d.Tenant).Err(); err != nil {
		return fmt.Errorf("add %s to the outbox of tenant %s: %w", d.ID, d.Tenant, err)
	}
	t := d.Tenant
	n, err := addOutboxScript.Run(ctx, s.rdb,
		[]string{outboxItemsKey(t), outboxQueueKey(t), outboxDueKey(t, e.Endpoint), outboxEndpointsKey(t),
			deliveriesKey(t), deliveriesOrderKey(t)},
		d.ID, entry, rec, e.Endpoint, max, DeliveriesMaxLen, millis(DeliveriesTTL)).Int()
	if err != nil {
		return fmt.Errorf("add %s to the outbox of tenant %s: %w", d.ID, t, err)
	}
	if n < 0 {
		return fmt.Errorf("add %s to the outbox of tenant %s: %w (%d deliveries wait for its endpoint)", d.ID, t, ErrOutboxFull, max)
	}
	return nil
}

// ClaimOutbox claims up to max of the endpoint's due entries (the oldest due first) for lease:
// until then nobody else claims them; after it, anybody may (the claimant is presumed dead).
// It also returns how long until the endpoint's next entry is due (or its earliest claim
// expires), -1 when it has none left.
func (s *Store) ClaimOutbox(ctx context.Context, tenant, endpoint string, max int, lease time.Duration, token string) ([]OutboxClaim, time.Duration, error) {
	if err := checkOutbox(tenant, token, endpoint); err != nil {
		return nil, 0, fmt.Errorf("claim from the outbox: %w", err)
	}
	if max <= 0 || lease <= 0 {
		return nil, 0, fmt.Errorf("claim from the outbox of tenant %s: %w: max %d, lease %v", tenant, ErrInvalid, max, lease)
	}
	res, err := claimOutboxScript.Run(ctx, s.rdb,
		[]string{outboxDueKey(tenant, endpoint), outboxClaimsKey(tenant), outboxItemsKey(tenant), outboxQueueKey(tenant), outboxEndpointsKey(tenant)},
		max, millis(lease), token, endpoint).Slice()
	if err != nil {
		return nil, 0, fmt.Errorf("claim from the outbox of tenant %s, endpoint %s: %w", tenant, endpoint, err)
	}
	if len(res) == 0 || (len(res)-1)%3 != 0 {
		return nil, 0, fmt.Errorf("claim from the outbox of tenant %s: unexpected answer of %d values", tenant, len(res))
	}
	next := time.Duration(-1)
	if ms, ok := res[0].(int64); ok && ms >= 0 {
		next = time.Duration(ms) * time.Millisecond
	}
	var out []OutboxClaim
	for i := 1; i+2 < len(res); i += 3 {
		raw, _ := res[i+1].(string)
		var e OutboxEntry
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			// Not ours to read (written by a newer schema?): leave it claimed, to expire.
			return out, next, fmt.Errorf("claim from the outbox of tenant %s: decoding %v: %w", tenant, res[i], err)
		}
		age, _ := res[i+2].(int64)
		out = append(out, OutboxClaim{OutboxEntry: e, Token: token, Age: time.Duration(age) * time.Millisecond})
	}
	return out, next, nil
}

// SettleOutbox ends claim c with rec, the delivery's record after the attempt: a final rec
// (DeliveryDelivered, DeliveryFailed) removes the entry; any other puts it back, due in
// retryIn, with rec as its state. The record is written in the same script. If c is no longer
// the entry's claim, or another claimant settled the entry already, nothing is written and the
// error wraps ErrNotOwner. If the entry is gone without a final record (Redis lost it), rec is
// recorded anyway and a retry puts the entry back.
func (s *Store) SettleOutbox(ctx context.Context, c OutboxClaim, rec Delivery, retryIn time.Duration) error {
	mode := "retry"
	if rec.Status == DeliveryDelivered || rec.Status == DeliveryFailed {
		mode = "done"
	}
	return s.settle(ctx, c, rec, mode, retryIn)
}

// ReleaseOutbox gives claim c back unattempted: the entry is due again at once, as it was.
// The error wraps ErrNotOwner when c is no longer its claim.
func (s *Store) ReleaseOutbox(ctx context.Context, c OutboxClaim) error {
	return s.settle(ctx, c, c.Delivery, "release", 0)
}

func (s *Store) settle(ctx context.Context, c OutboxClaim, rec Delivery, mode string, retryIn time.Duration) error {
	t, id := c.Delivery.Tenant, c.Delivery.ID
	if err := checkOutbox(t, id, c.Endpoint); err != nil {
		return fmt.Errorf("settle outbox entry: %w", err)
	}
	if err := checkID("claim token", c.Token); err != nil {
		return fmt.Errorf("settle outbox entry %s: %w", id, err)
	}
	if rec.ID != id || rec.Tenant != t {
		return fmt.Errorf("settle outbox entry %s of tenant %s: %w: record of %s, tenant %s", id, t, ErrInvalid, rec.ID, rec.Tenant)
	}
	if rec.UpdatedAt.IsZero() {
		rec.UpdatedAt = s.clock()
	}
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = rec.UpdatedAt
	}
	e := c.OutboxEntry
	entry, raw, err := outboxJSON(&e, rec)
	if err != nil {
		return fmt.Errorf("settle outbox entry %s of tenant %s: %w", id, t, err)
	}
	n, err := settleOutboxScript.Run(ctx, s.rdb,
		[]string{outboxItemsKey(t), outboxQueueKey(t), outboxDueKey(t, c.Endpoint), outboxClaimsKey(t),
			outboxEndpointsKey(t), deliveriesKey(t), deliveriesOrderKey(t)},
		id, c.Token, mode, entry, raw, millis(max(retryIn, 0)), c.Endpoint, DeliveriesMaxLen, millis(DeliveriesTTL)).Int()
	if err != nil {
		return fmt.Errorf("settle outbox entry %s of tenant %s (%s): %w", id, t, mode, err)
	}
	switch n {
	case 0:
		return fmt.Errorf("settle outbox entry %s of tenant %s: %w: claimed again since", id, t, ErrNotOwner)
	case 2:
		return fmt.Errorf("settle outbox entry %s of tenant %s: %w: settled already", id, t, ErrNotOwner)
	case 3:
		// Redis lost the outbox; the tenant's index may be gone with it.
		if mode == "retry" {
			if err := s.rdb.SAdd(ctx, keyOutboxTenants, t).Err(); err != nil {
				return fmt.Errorf("settle outbox entry %s of tenant %s: %w", id, t, err)
			}
		}
	}
	return nil
}

// OutboxTenants lists the tenants that have, or had, entries in the outbox.
func (s *Store) OutboxTenants(ctx context.Context) ([]string, error) {
	ts, err := s.rdb.SMembers(ctx, keyOutboxTenants).Result()
	if err != nil {
		return nil, fmt.Errorf("outbox tenants: %w", err)
	}
	return ts, nil
}

// OutboxEndpoints lists the endpoints that have entries in the tenant's outbox.
func (s *Store) OutboxEndpoints(ctx context.Context, tenant string) ([]string, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, fmt.Errorf("outbox endpoints: %w", err)
	}
	eps, err := s.rdb.SMembers(ctx, outboxEndpointsKey(tenant)).Result()
	if err != nil {
		return nil, fmt.Errorf("outbox endpoints of tenant %s: %w", tenant, err)
	}
	return eps, nil
}

// OutboxStats counts the entries of every tenant's outbox and finds the oldest.
func (s *Store) OutboxStats(ctx context.Context) (OutboxStats, error) {
	var st OutboxStats
	tenants, err := s.OutboxTenants(ctx)
	if err != nil {
		return st, err
	}
	if len(tenants) == 0 {
		return st, nil
	}
	var now *redis.TimeCmd
	cards := make([]*redis.IntCmd, 0, len(tenants))
	firsts := make([]*redis.ZSliceCmd, 0, len(tenants))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		now = p.Time(ctx)
		for _, t := range tenants {
			if checkTenant(t) != nil {
				continue
			}
			cards = append(cards, p.ZCard(ctx, outboxQueueKey(t)))
			firsts = append(firsts, p.ZRangeWithScores(ctx, outboxQueueKey(t), 0, 0))
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("outbox stats: %w", err)
	}
	oldest := int64(-1)
	for i := range cards {
		st.Depth += cards[i].Val()
		if z := firsts[i].Val(); len(z) == 1 && (oldest < 0 || int64(z[0].Score) < oldest) {
			oldest = int64(z[0].Score)
		}
	}
	if oldest >= 0 {
		st.Oldest = max(0, time.Duration(now.Val().UnixMilli()-oldest)*time.Millisecond)
	}
	return st, nil
}

// checkOutbox checks what names an outbox entry.
func checkOutbox(tenant, id, endpoint string) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	if err := checkID("id", id); err != nil {
		return err
	}
	return checkID("endpoint", endpoint)
}

// outboxJSON encodes e with rec as its delivery, and rec.
func outboxJSON(e *OutboxEntry, rec Delivery) (entry, record []byte, err error) {
	e.Delivery = rec
	if entry, err = json.Marshal(e); err != nil {
		return nil, nil, err
	}
	if record, err = json.Marshal(rec); err != nil {
		return nil, nil, err
	}
	return entry, record, nil
}

func outboxTenantKey(tenant string) string    { return keyOutbox + "{" + tenant + "}" }
func outboxItemsKey(tenant string) string     { return outboxTenantKey(tenant) + outboxItemsSuffix }
func outboxQueueKey(tenant string) string     { return outboxTenantKey(tenant) + outboxQueueSuffix }
func outboxClaimsKey(tenant string) string    { return outboxTenantKey(tenant) + outboxClaimsSuffix }
func outboxEndpointsKey(tenant string) string { return outboxTenantKey(tenant) + outboxEndpointsSuffix }
func outboxDueKey(tenant, endpoint string) string {
	return outboxTenantKey(tenant) + outboxDueSuffix + endpoint
}
