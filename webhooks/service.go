package webhooks

import (
	"context"
	"time"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// Service is what the /v1 API asks of the app (implemented by *app.App). Errors are the app's
// domain errors (app.ErrNotFound, ..., or an *app.Error carrying a stable code); the edge turns
// them into status codes in one place (errorResponse).
//
// The edge authenticates and passes the Principal; every rule about what that principal may do
// (its role, its own extension and sessions, its tenant, who may supervise whom) is the app's.
type Service interface {
	// AuditAdmin records an administrative action before it takes effect (an error: do not act).
	AuditAdmin(ctx context.Context, p app.Principal, action, target string, extra map[string]string) error
	// Calls lists the tenant's calls in progress.
	Calls(ctx context.Context, p app.Principal) ([]app.Call, error)
	// Join originates the supervisor's phone; the session is returned in state "ringing".
	Join(ctx context.Context, p app.Principal, req app.JoinRequest) (store.Session, error)
	// Supervisions lists the tenant's live sessions.
	Supervisions(ctx context.Context, p app.Principal) ([]store.Session, error)
	// Supervision returns a live or ended session; ErrNotFound for another tenant's.
	Supervision(ctx context.Context, p app.Principal, id string) (store.Session, error)
	// SetMode switches a live session's mode.
	SetMode(ctx context.Context, p app.Principal, id string, mode dialplan.Mode) (store.Session, error)
	// Leave ends a session and returns it ended.
	Leave(ctx context.Context, p app.Principal, id string) (store.Session, error)
}

// Store is the part of *store.Store the HTTP edge uses.
type Store interface {
	// Idempotency-Key records (POST /v1/supervisions).
	PutIfAbsent(ctx context.Context, tenant, key string, value []byte, ttl time.Duration) (existing []byte, created bool, err error)
	SwapIdempotent(ctx context.Context, tenant, key string, old, value []byte, ttl time.Duration) (bool, error)
	DeleteIdempotent(ctx context.Context, tenant, key string, old []byte) (bool, error)

	// API keys created through the API, and the replay guard of signed requests.
	CreateAPIKey(ctx context.Context, k store.APIKey) error
	APIKeyByHash(ctx context.Context, sha string) (store.APIKey, error)
	APIKeys(ctx context.Context, tenant string) ([]store.APIKey, error)
	RevokeAPIKey(ctx context.Context, tenant, name string) (store.APIKey, error)
	ClaimNonce(ctx context.Context, tenant, nonce string, ttl time.Duration) (fresh bool, err error)

	// The tenants' event streams (package outbound writes them, GET /v1/events reads).
	ReadEvents(ctx context.Context, tenant, afterID string, block time.Duration, count int) ([]store.Event, error)
	LastEventID(ctx context.Context, tenant string) (string, error)

	// Outbound webhook deliveries (package outbound records them, GET /v1/webhook-deliveries
	// reads).
	Deliveries(ctx context.Context, tenant string, limit int) ([]store.Delivery, error)
}

var _ Store = (*store.Store)(nil)

var _ Service = (*app.App)(nil)
