package outbound

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
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

// signingKey is the HMAC key of an endpoint secret: a "whsec_" secret is base64.
func signingKey(secret string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("secret: required")
	}
	if b64, ok := strings.CutPrefix(secret, "whsec_"); ok {
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(key) == 0 {
			return nil, errors.New("secret: whsec_ followed by invalid base64")
		}
		return key, nil
	}
	return []byte(secret), nil
}

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
