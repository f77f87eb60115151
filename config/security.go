package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// What the configuration must not let through: published sample credentials on a listener
// others can reach, webhook targets inside the host (SSRF), secrets in messages.

// DefaultARIPassword is the ARI password docker/compose.yml falls back to when
// EARPIECE_ARI_PASSWORD is unset. Everyone who read the file knows it.
const DefaultARIPassword = "earpiece-change-me"

// sampleAPIKeys are the API keys whose SHA-256 this repository's sample configurations carry
// (docker/earpiece.yaml, config/testdata/sample.yaml) and whose plain text the README and the
// samples' comments print.
var sampleAPIKeys = []string{
	"example-acme-crm-key",
	"example-acme-adam-key",
	"example-acme-john-key",
	"example-globex-admin-key",
}

// IsSampleKeyHash reports whether sha (hex SHA-256, any case) is that of a published sample
// API key.
func IsSampleKeyHash(sha string) bool {
	return slices.ContainsFunc(sampleAPIKeys, func(k string) bool { return strings.EqualFold(SHA256Hex(k), sha) })
}

// SampleCredentials lists, one message each, the published credentials the configuration
// carries: sample API keys and the compose file's default ARI password.
func (c *Config) SampleCredentials() []string {
	var out []string
	if c.ARI.Password == DefaultARIPassword {
		out = append(out, fmt.Sprintf("ari.password is the published default %q (set EARPIECE_ARI_PASSWORD)", DefaultARIPassword))
	}
	for _, k := range c.OperatorKeys {
		if IsSampleKeyHash(k.SHA256) {
			out = append(out, fmt.Sprintf("operator_keys[%s] is a published sample key (replace its sha256 with your own key's)", k.Name))
		}
	}
	for _, t := range c.Tenants {
		for _, k := range t.APIKeys {
			if IsSampleKeyHash(k.SHA256) {
				out = append(out, fmt.Sprintf("tenants[%s].api_keys[%s] is a published sample key (replace its sha256 with your own key's)", t.ID, k.Name))
			}
		}
	}
	return out
}

// LoopbackOnly reports whether the HTTP listener can be reached from this host only: its
// Published address when set, else its Listen address, is a loopback address or "localhost".
// An empty host (":8080"), an unspecified address (0.0.0.0, ::) or any other name or address
// can be reached from elsewhere.
func (h HTTP) LoopbackOnly() bool {
	addr := h.Listen
	if h.Published != "" {
		addr = h.Published
	}
	host := addr
	if hst, _, err := net.SplitHostPort(addr); err == nil {
		host = hst
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// CheckExposure refuses a configuration whose HTTP listener can be reached beyond loopback
// while it carries published credentials (SampleCredentials): the sample admin key's plain text
// is in the README, and whoever holds it can listen to any call of the tenant. Refusing to
// start, rather than warning in a log nobody reads, is what keeps a copied sample off a
// network. A listener published on the host's loopback only (compose's default) says so with
// http.published (EARPIECE_HTTP_PUBLISHED).
func (c *Config) CheckExposure() error {
	found := c.SampleCredentials()
	if len(found) == 0 || c.HTTP.LoopbackOnly() {
		return nil
	}
	where := fmt.Sprintf("http.listen %q", c.HTTP.Listen)
	if c.HTTP.Published != "" {
		where = fmt.Sprintf("http.published %q", c.HTTP.Published)
	}
	errs := []error{fmt.Errorf("refusing to serve beyond loopback (%s) with the published sample credentials below; "+
		"replace them, or listen on loopback only (a container published on the host's loopback only: set %s=127.0.0.1)", where, EnvHTTPPublished)}
	for _, f := range found {
		errs = append(errs, errors.New("  "+f))
	}
	return errors.Join(errs...)
}

// LocalAddress reports whether ip is one a webhook must not reach unless allowed (allow_local):
// loopback, link-local (169.254.0.0/16 with the cloud metadata services, fe80::/10), "this
// network" (0.0.0.0/8), unspecified, or multicast — the host itself and its link, not a CRM.
// IPv4-mapped IPv6 addresses are judged as IPv4. Private networks (10/8, 192.168/16, fc00::/7)
// are allowed: CRMs live there.
func LocalAddress(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.Is4() && ip.As4()[0] == 0 {
		return true
	}
	return ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || !ip.IsValid()
}

// CheckWebhookURL checks a webhook URL: absolute http or https with a host and, unless
// allowLocal, no local IP address (LocalAddress) as its host. Names are judged when they are
// resolved, at every connection (a name can change its addresses after this check). Messages
// show the URL without its password.
func CheckWebhookURL(raw string, allowLocal bool) error {
	if raw == "" {
		return errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New(redactError(err, raw))
	}
	shown := RedactURL(raw)
	switch {
	case u.Scheme == "" || u.Host == "":
		return fmt.Errorf("%q: want an absolute URL with a host", shown)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: scheme must be http or https", shown)
	}
	if allowLocal {
		return nil
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	if ip, err := netip.ParseAddr(host); err == nil && LocalAddress(ip) {
		return fmt.Errorf("%q: %s is a loopback, link-local or unspecified address (set allow_local to send there)", shown, host)
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return fmt.Errorf("%q: %s is this host (set allow_local to send there)", shown, host)
	}
	return nil
}

// WebhookSigningKey is the HMAC key of a webhook secret: "whsec_" followed by base64 (the
// Standard Webhooks format) is decoded; any other value is used as it is.
func WebhookSigningKey(secret string) ([]byte, error) {
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

// MinSigningSecretLen is the shortest request-signing secret accepted.
const MinSigningSecretLen = 32

// RedactURL returns raw with the password of its user information replaced by "xxxxx", also
// when raw does not parse, so that it can be shown in messages and logs.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if _, has := u.User.Password(); !has {
			return raw
		}
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	authority, path := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return raw
	}
	user, _, hasPass := strings.Cut(authority[:at], ":")
	if !hasPass {
		return raw
	}
	return scheme + "://" + user + ":xxxxx" + authority[at:] + path
}

// RedactError is err's message with raw (a URL) shown redacted: a *url.Error's own copy of the
// URL is dropped, and any other occurrence of the URL or its password is replaced.
func RedactError(err error, raw string) string { return redactError(err, raw) }

func redactError(err error, raw string) string {
	var ue *url.Error
	msg := err.Error()
	if errors.As(err, &ue) {
		msg = fmt.Sprintf("%s %q: %v", ue.Op, RedactURL(raw), ue.Err)
	}
	msg = strings.ReplaceAll(msg, raw, RedactURL(raw))
	if pw := urlPassword(raw); len(pw) >= 4 {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	return msg
}

// urlPassword is the password in raw's user information, found without parsing.
func urlPassword(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:at], ":")
	return pw
}
