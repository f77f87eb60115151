package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// Service is what the /v1 API asks of the app (implemented by *app.App). Errors are the app's
// domain errors (app.ErrNotFound, ..., or an *app.Error carrying a stable code); the edge turns
// them into status codes in one place (errorResponse).
//
// The edge authenticates, applies the coarse role rules (agents may not supervise; a
// supervisor key acts only as its own extension and on its own sessions) and never crosses
// tenants; who may supervise whom (hunt groups, tenant toggle) is the app's decision.
type Service interface {
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

// Store is the part of *store.Store the HTTP edge and the Hub use.
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

	// The tenants' event streams (Hub writes, GET /v1/events reads).
	PublishEvent(ctx context.Context, tenant, typ string, data []byte) (string, error)
	ReadEvents(ctx context.Context, tenant, afterID string, block time.Duration, count int) ([]store.Event, error)
	LastEventID(ctx context.Context, tenant string) (string, error)

	// Outbound webhook deliveries (Hub writes, GET /v1/webhook-deliveries reads).
	SaveDelivery(ctx context.Context, d store.Delivery) error
	Deliveries(ctx context.Context, tenant string, limit int) ([]store.Delivery, error)
}

var _ Store = (*store.Store)(nil)

// Endpoint is a CRM URL that receives a tenant's notifications as signed POSTs (Standard
// Webhooks). The configuration file has no field for these yet; main builds the list.
type Endpoint struct {
	Tenant string
	URL    string // http or https
	// Secret keys the HMAC of the webhook-signature header. A "whsec_" prefix marks a
	// base64-encoded key (the Standard Webhooks format), which is decoded; any other value
	// is used as it is.
	Secret string
}

// Validate reports what is wrong with e.
func (e Endpoint) Validate() error {
	var errs []error
	if e.Tenant == "" {
		errs = append(errs, errors.New("tenant: required"))
	}
	u, err := url.Parse(e.URL)
	switch {
	case e.URL == "":
		errs = append(errs, errors.New("url: required"))
	case err != nil:
		errs = append(errs, fmt.Errorf("url: %w", err))
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		errs = append(errs, fmt.Errorf("url %q: want an absolute http or https URL", e.URL))
	}
	if _, err := signingKey(e.Secret); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("webhook endpoint %q of tenant %q: %w", e.URL, e.Tenant, err)
	}
	return nil
}

var _ Service = (*app.App)(nil)
