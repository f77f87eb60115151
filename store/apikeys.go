package store

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// API keys created through the HTTP API (the configuration's bootstrap keys
// live in config.Directory, not here). Only the SHA-256 of a key is stored,
// never the key itself; a request is authenticated by hashing the key it
// presents and looking the hash up. A key's record and its tenant's name
// index share a hash tag, so that a create or revoke changes both atomically
// on a Redis Cluster too (keyAPIKey, keyAPIKeyNames in keys.go); replayed
// request signatures are refused through keyNonce.

// APIKey is an API key created through the HTTP API.
type APIKey struct {
	Name      string `json:"name"`
	Tenant    string `json:"tenant"`
	Role      string `json:"role"`                // "agent", "supervisor" or "admin"
	Extension string `json:"extension,omitempty"` // for agent and supervisor keys
	SHA256    string `json:"sha256"`              // lower-case hex SHA-256 of the key
	// RequireSignatures makes the HTTP edge refuse requests made with this
	// key that are not signed (X-Earpiece-Signature).
	RequireSignatures bool `json:"require_signatures,omitempty"`
	// SigningSecret keys the HMAC of the key's signed requests. Unlike the
	// key it is stored as it is (verifying an HMAC needs it); the API shows
	// it once, when the key is created. Keys created before signing secrets
	// existed have none and cannot sign.
	SigningSecret string    `json:"signing_secret,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	CreatedBy     string    `json:"created_by,omitempty"` // name of the key that created it
}

// createAPIKeyScript stores a key unless its name (in the tenant) or its hash
// is taken. KEYS[1] names hash, KEYS[2] key record; ARGV[1] name, ARGV[2]
// hash, ARGV[3] JSON. Returns 0 stored, 1 name taken, 2 hash taken.
var createAPIKeyScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 1
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 2
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
return 0
`)

// CreateAPIKey stores k. It fails with ErrExists when the tenant already has
// a key named k.Name or when a key with the same hash exists, and with
// ErrInvalid for an empty name, a bad tenant or a SHA256 that is not 64
// lower-case hex digits. A zero CreatedAt is set to now.
func (s *Store) CreateAPIKey(ctx context.Context, k APIKey) error {
	if err := checkAPIKey(k); err != nil {
		return fmt.Errorf("create api key %q: %w", k.Name, err)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.clock()
	}
	k.CreatedAt = k.CreatedAt.UTC()
	raw, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("create api key %q for tenant %s: %w", k.Name, k.Tenant, err)
	}
	res, err := createAPIKeyScript.Run(ctx, s.rdb,
		[]string{apiKeyNamesKey(k.Tenant), apiKeyKey(k.SHA256)}, k.Name, k.SHA256, raw).Int()
	if err != nil {
		return fmt.Errorf("create api key %q for tenant %s: %w", k.Name, k.Tenant, err)
	}
	switch res {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("create api key %q for tenant %s: name: %w", k.Name, k.Tenant, ErrExists)
	default:
		return fmt.Errorf("create api key %q for tenant %s: key hash: %w", k.Name, k.Tenant, ErrExists)
	}
}

// APIKeyByHash returns the key whose SHA-256 is sha (lower-case hex), or
// ErrNotFound.
func (s *Store) APIKeyByHash(ctx context.Context, sha string) (APIKey, error) {
	raw, err := s.rdb.Get(ctx, apiKeyKey(sha)).Bytes()
	if errors.Is(err, redis.Nil) {
		err = ErrNotFound
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("api key by hash: %w", err)
	}
	var k APIKey
	if err := json.Unmarshal(raw, &k); err != nil {
		return APIKey{}, fmt.Errorf("api key by hash: decoding: %w", err)
	}
	return k, nil
}

// APIKeys returns the tenant's keys sorted by name.
func (s *Store) APIKeys(ctx context.Context, tenant string) ([]APIKey, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}
	names, err := s.rdb.HGetAll(ctx, apiKeyNamesKey(tenant)).Result()
	if err != nil {
		return nil, fmt.Errorf("api keys of tenant %s: %w", tenant, err)
	}
	out := []APIKey{}
	if len(names) == 0 {
		return out, nil
	}
	keys := make([]string, 0, len(names))
	for _, sha := range names {
		keys = append(keys, apiKeyKey(sha))
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("api keys of tenant %s: %w", tenant, err)
	}
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // revoked between the two reads
		}
		var k APIKey
		if err := json.Unmarshal([]byte(str), &k); err != nil {
			return nil, fmt.Errorf("api keys of tenant %s: decoding: %w", tenant, err)
		}
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b APIKey) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RevokeAPIKey deletes the tenant's key named name; requests made with it
// fail from then on. It fails with ErrNotFound when there is no such key.
// It returns the revoked key.
func (s *Store) RevokeAPIKey(ctx context.Context, tenant, name string) (APIKey, error) {
	if err := checkTenant(tenant); err != nil {
		return APIKey{}, fmt.Errorf("revoke api key %q: %w", name, err)
	}
	var revoked APIKey
	namesKey := apiKeyNamesKey(tenant)
	err := s.optimistic(ctx, func() error {
		return s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			sha, err := tx.HGet(ctx, namesKey, name).Result()
			if errors.Is(err, redis.Nil) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			raw, err := tx.Get(ctx, apiKeyKey(sha)).Bytes()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			revoked = APIKey{Name: name, Tenant: tenant, SHA256: sha}
			if len(raw) > 0 {
				_ = json.Unmarshal(raw, &revoked) // best effort: the key goes anyway
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HDel(ctx, namesKey, name)
				p.Del(ctx, apiKeyKey(sha))
				return nil
			})
			return err
		}, namesKey)
	})
	if err != nil {
		return APIKey{}, fmt.Errorf("revoke api key %q of tenant %s: %w", name, tenant, err)
	}
	return revoked, nil
}

// ClaimNonce records nonce for the tenant for ttl and reports whether it was
// new (fresh=true); false means it was seen within ttl: a replay. The HTTP
// edge uses request signatures as nonces.
func (s *Store) ClaimNonce(ctx context.Context, tenant, nonce string, ttl time.Duration) (fresh bool, err error) {
	if err := checkTenant(tenant); err != nil {
		return false, fmt.Errorf("nonce: %w", err)
	}
	if err := checkID("nonce", nonce); err != nil {
		return false, fmt.Errorf("nonce for tenant %s: %w", tenant, err)
	}
	if ttl <= 0 {
		return false, fmt.Errorf("nonce for tenant %s: %w: TTL %v", tenant, ErrInvalid, ttl)
	}
	ok, err := s.rdb.SetNX(ctx, nonceKey(tenant, nonce), "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("nonce for tenant %s: %w", tenant, err)
	}
	return ok, nil
}

func checkAPIKey(k APIKey) error {
	if err := checkTenant(k.Tenant); err != nil {
		return err
	}
	if err := checkID("api key name", k.Name); err != nil {
		return err
	}
	if len(k.SHA256) != 64 || strings.ToLower(k.SHA256) != k.SHA256 {
		return fmt.Errorf("%w: sha256 must be 64 lower-case hex digits", ErrInvalid)
	}
	if _, err := hex.DecodeString(k.SHA256); err != nil {
		return fmt.Errorf("%w: sha256 must be 64 lower-case hex digits", ErrInvalid)
	}
	return nil
}
