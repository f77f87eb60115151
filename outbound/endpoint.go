package outbound

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/earpiece/earpiece/config"
)

// Outbound webhook headers (Standard Webhooks, https://www.standardwebhooks.com/).
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// Endpoint is a CRM URL that receives a tenant's notifications as signed POSTs (a tenant's
// `webhooks` entry in the configuration).
type Endpoint struct {
	Tenant string
	URL    string // http or https
	// Secret keys the HMAC of the webhook-signature header. A "whsec_" prefix marks a
	// base64-encoded key (the Standard Webhooks format), which is decoded; any other value
	// is used as it is.
	Secret string
	// AllowLocal lets the endpoint reach loopback, link-local and unspecified addresses
	// (config.LocalAddress), which are refused otherwise: in the URL, and at every
	// connection, whatever the name resolves to then.
	AllowLocal bool
}

// Validate reports what is wrong with e: the same checks as the configuration's
// (config.CheckWebhookURL, config.WebhookSigningKey), so that what check-config passes is what
// the hub sends. Messages show the URL without its password.
func (e Endpoint) Validate() error {
	var errs []error
	if e.Tenant == "" {
		errs = append(errs, errors.New("tenant: required"))
	}
	if err := config.CheckWebhookURL(e.URL, e.AllowLocal); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	}
	if _, err := signingKey(e.Secret); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("webhook endpoint %q of tenant %q: %w", config.RedactURL(e.URL), e.Tenant, err)
	}
	return nil
}

// signingKey is the HMAC key of an endpoint secret: a "whsec_" secret is base64.
func signingKey(secret string) ([]byte, error) { return config.WebhookSigningKey(secret) }

// Sign is the webhook-signature header value: "v1," + base64(HMAC-SHA256(key,
// id + "." + timestamp + "." + body)).
func Sign(key []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte("."))
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
