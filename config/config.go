// Package config is earpiece's configuration: how to reach Asterisk (ARI),
// Redis and where to serve HTTP, plus the tenant directory — who is who on
// the PBX (extensions and their endpoints, roles, hunt groups), each
// tenant's supervision dialing rules, and the bootstrap API keys.
//
// Life cycle, as main is expected to run it:
//
//	cfg, err := config.Load(path)   // strict YAML, then defaults
//	cfg.ApplyEnv(os.LookupEnv)      // secrets and deploy-time overrides
//	err = cfg.Validate()            // every problem at once
//	dir, err := config.NewDirectory(cfg)
//
// Only Load touches the file system; the package never reads the
// environment itself (ApplyEnv gets a lookup function). A Directory is
// immutable once built and answers the lookups and the authorization rule
// (who may supervise whom: Directory.CanSupervise) for concurrent callers.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/earpiece/earpiece/dialplan"
)

// Defaults applied by ApplyDefaults to empty fields.
const (
	DefaultARIURL     = "http://127.0.0.1:8088/ari"
	DefaultARIUser    = "earpiece"
	DefaultARIApp     = dialplan.DefaultApp
	DefaultRedisURL   = "redis://127.0.0.1:6379/0"
	DefaultHTTPListen = "127.0.0.1:8080"
)

// Environment variables read by ApplyEnv.
const (
	EnvARIURL      = "EARPIECE_ARI_URL"
	EnvARIUser     = "EARPIECE_ARI_USER"
	EnvARIPassword = "EARPIECE_ARI_PASSWORD"
	EnvARIApp      = "EARPIECE_ARI_APP"
	EnvRedisURL    = "EARPIECE_REDIS_URL"
	EnvHTTPListen  = "EARPIECE_HTTP_LISTEN"
	// EnvAuditKey sets redis.audit_key.
	EnvAuditKey = "EARPIECE_AUDIT_KEY"
	// EnvHTTPPublished sets http.published: compose passes the host address it publishes
	// earpiece's port on.
	EnvHTTPPublished = "EARPIECE_HTTP_PUBLISHED"
	// EnvJournalDir sets redis.journal_dir.
	EnvJournalDir = "EARPIECE_JOURNAL_DIR"
)

// Config is the whole configuration file.
type Config struct {
	ARI   ARI   `yaml:"ari"`
	Redis Redis `yaml:"redis"`
	HTTP  HTTP  `yaml:"http"`
	// Dialplan is where earpiece keeps the rendered dialplan up to date (dialplan.go).
	Dialplan Dialplan `yaml:"dialplan"`
	// OperatorKeys are the platform operator's API keys: they administer the tenants (create,
	// delete, switch supervision on and off) and act in none. They belong to the services part
	// of the configuration, not to the directory: they are never written to Redis (the
	// directory document carries tenants only), so no API call can add, change or reveal one,
	// and changing them takes a restart with the edited file.
	OperatorKeys []OperatorKey `yaml:"operator_keys"`
	Tenants      []Tenant      `yaml:"tenants"`
}

// OperatorKey is a platform operator's API key (role operator, no tenant). As for tenant keys,
// only its SHA-256 is stored (printf %s "$KEY" | sha256sum), and no key may be both an
// operator's and a tenant's.
type OperatorKey struct {
	Name   string `yaml:"name"`
	SHA256 string `yaml:"sha256"`
}

// ARI is how earpiece reaches Asterisk's REST interface (ari.conf, http.conf).
type ARI struct {
	// URL is the ARI base, e.g. http://127.0.0.1:8088/ari.
	URL string `yaml:"url"`
	// User and Password are an ari.conf user. Prefer passing the password
	// through EARPIECE_ARI_PASSWORD rather than writing it in the file.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// App is the Stasis application name, the one the dialplan's Stasis()
	// calls and the events WebSocket subscribes to.
	App string `yaml:"app"`
}

// Redis is where earpiece keeps its state.
type Redis struct {
	// URL is a redis:// or rediss:// URL (go-redis ParseURL syntax) for one server,
	// redis-sentinel://host:port,host:port/db?master=NAME for the primary a set of Sentinels
	// names, or redis-cluster://host:port,host:port for a Redis Cluster (redisurl.go).
	URL string `yaml:"url"`
	// JournalDir, when set, keeps the journal of the writes a session's teardown could not
	// make during a Redis outage (app/journal.go) in a file there as well as in memory, so
	// that an instance stopped or crashed during the outage makes them when it starts again.
	// One directory per instance, writable by earpiece. Empty: memory only.
	JournalDir string `yaml:"journal_dir"`
	// AuditRetentionDays is how long audit entries are kept (0: the store's default, 365
	// days). Retention is by time, never by count, so that nobody can push the history out
	// by making many entries.
	AuditRetentionDays int `yaml:"audit_retention_days"`
	// AuditKey signs the checkpoints that retention trimming leaves in each tenant's audit
	// hash chain (HMAC-SHA256), so the rest of the chain stays verifiable. Prefer
	// EARPIECE_AUDIT_KEY. Without one, a trimmed chain verifies as unverifiable.
	AuditKey string `yaml:"audit_key"`
}

// HTTP is the API, dashboard and metrics listener.
type HTTP struct {
	// Listen is a host:port for net.Listen.
	Listen string `yaml:"listen"`
	// Published is the address clients reach the listener at when something between them
	// decides it, e.g. 127.0.0.1 for a container whose port the host publishes on its
	// loopback only. Empty: Listen says. earpiece judges its exposure by it (see
	// CheckExposure): a listener reachable beyond loopback refuses to start with sample
	// credentials.
	Published string `yaml:"published"`
	// EventStreams bounds GET /v1/events; zero fields take the HTTP edge's defaults.
	EventStreams EventStreams `yaml:"event_streams"`
	// RateLimits are the /v1 API's request budgets; zero fields take the HTTP edge's
	// defaults.
	RateLimits RateLimits `yaml:"rate_limits"`
}

// EventStreams bounds the Server-Sent Events streams of one instance.
type EventStreams struct {
	Max          int `yaml:"max"`            // open streams on the instance (64)
	MaxPerTenant int `yaml:"max_per_tenant"` // of one tenant (32)
	MaxPerKey    int `yaml:"max_per_key"`    // of one API key (8)
	// MaxLifetime ends a stream after this long (1h); EventSource clients reconnect and
	// resume with Last-Event-ID, authenticating again.
	MaxLifetime time.Duration `yaml:"max_lifetime"`
}

// RateLimits are token buckets per instance: a bucket of Burst requests refilled at
// PerSecond.
type RateLimits struct {
	PerKey     Rate `yaml:"per_key"`     // per API key, after authentication (20/s, burst 40)
	PerAddress Rate `yaml:"per_address"` // per client address (IPv6: per /64) on /v1 (50/s, burst 100)
	// FailedAuthPerAddress budgets failed authentications per client address (1 per 2 s,
	// burst 10); once spent, the address gets 429 before its key is even looked at.
	FailedAuthPerAddress Rate `yaml:"failed_auth_per_address"`
}

// Rate is one token bucket.
type Rate struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

// Tenant is one customer of the PBX. Nothing about supervision ever crosses
// from one tenant to another.
type Tenant struct {
	// ID is the stable key: [a-z0-9_-], used in Redis keys, API paths,
	// the rendered dialplan context and Stasis arguments.
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// SupervisionEnabled is the per-tenant switch for supervision as a
	// whole: a tenant cannot supervise anybody until it is enabled.
	SupervisionEnabled bool `yaml:"supervision_enabled"`
	// DialingRules are the tenant's feature codes; an absent or empty field
	// takes the default (*90/*91/*92, DTMF 0/1/2).
	DialingRules dialplan.Rules `yaml:"dialing_rules"`
	// Endpoints are the devices the operator gives the tenant, as patterns (endpoints.go):
	// PJSIP/744 exactly, or a literal TECH/ and resource prefix ending in * (PJSIP/7*,
	// PJSIP/acme-*). Each extension's endpoint must match one of them; no two tenants' patterns
	// overlap. Without any, the tenant's extensions' endpoints are the operator's to set (the
	// file, or an operator key through the API). Only the operator changes them. omitempty keeps
	// the directory document of a tenant without them as it was (its hash included).
	Endpoints []string `yaml:"endpoints,omitempty"`
	// Announce is the announcement policy when a supervisor joins.
	Announce Announce `yaml:"announce"`
	// HelpRequests are the escalation and expiry timeouts of help requests (help.go).
	HelpRequests HelpPolicy  `yaml:"help_requests"`
	Extensions   []Extension `yaml:"extensions"`
	HuntGroups   []HuntGroup `yaml:"hunt_groups"`
	APIKeys      []APIKey    `yaml:"api_keys"`

	// RequestSignatures says whether every /v1 request made with one of the
	// tenant's API keys must be signed (X-Earpiece-Timestamp,
	// X-Earpiece-Signature): optional (default) or required. A key created
	// through the API can also require it on its own.
	RequestSignatures Signatures `yaml:"request_signatures"`
	// Webhooks are the CRM URLs that receive the tenant's call and supervision notifications,
	// signed with their secret (Standard Webhooks headers).
	Webhooks []Webhook `yaml:"webhooks"`
}

// Webhook is one outbound notification receiver of a tenant.
type Webhook struct {
	URL string `yaml:"url"`
	// Secret keys the HMAC-SHA256 signature; "whsec_"+base64 is decoded. Prefer SecretEnv.
	Secret string `yaml:"secret"`
	// SecretEnv names an environment variable holding the secret (applied by ApplyEnv).
	SecretEnv string `yaml:"secret_env"`
	// AllowLocal lets the URL reach loopback, link-local (cloud metadata services such as
	// 169.254.169.254 among them) and unspecified addresses, which are refused otherwise,
	// in the URL and at every connection (see LocalAddress).
	AllowLocal bool `yaml:"allow_local"`
}

// Extension is a phone of a tenant.
type Extension struct {
	// Number is what people dial, and what follows a feature-code prefix:
	// 1 to 32 digits.
	Number string `yaml:"number"`
	// Endpoint is the Asterisk device, TECH/resource (e.g. PJSIP/744). It
	// identifies the tenant of a caller, so it is unique across tenants.
	Endpoint string `yaml:"endpoint"`
	Name     string `yaml:"name"`
	// Role defaults to agent.
	Role Role `yaml:"role"`
}

// HuntGroup is a set of extensions; a member with SupervisionAllowed may
// supervise the other members' calls (the "Supervision allowed" option that
// hosted PBXs give hunt-group members).
type HuntGroup struct {
	Name    string   `yaml:"name"`
	Members []Member `yaml:"members"`
}

// Member is an extension's membership of a hunt group.
type Member struct {
	Extension          string `yaml:"extension"`
	SupervisionAllowed bool   `yaml:"supervision_allowed"`
}

// APIKey is a bootstrap API key. Only the SHA-256 of the key is stored, as
// 64 hex digits (printf %s "$KEY" | sha256sum).
type APIKey struct {
	Name string `yaml:"name"`
	Role Role   `yaml:"role"`
	// Extension is the extension an agent or supervisor key acts as;
	// admin keys act for the whole tenant and leave it empty.
	Extension string `yaml:"extension"`
	SHA256    string `yaml:"sha256"`
	// SigningSecret keys the HMAC of the key's signed requests (X-Earpiece-Signature): a
	// secret of its own, at least MinSigningSecretLen characters, that never travels with
	// a request. Required when the tenant requires signed requests. Prefer
	// SigningSecretEnv.
	SigningSecret string `yaml:"signing_secret"`
	// SigningSecretEnv names an environment variable holding SigningSecret (applied by
	// ApplyEnv).
	SigningSecretEnv string `yaml:"signing_secret_env"`
}

// Load reads the YAML file at path strictly (an unknown field is an error,
// so a typo cannot silently disable a setting) and applies defaults. It does
// not validate: apply environment overrides, then call Validate.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("loading config %q: %w", path, err)
	}
	defer f.Close()
	cfg, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("loading config %q: %w", path, err)
	}
	return cfg, nil
}

// Decode is Load for a reader: one strict YAML document, then defaults.
func Decode(r io.Reader) (*Config, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no YAML document (empty file?)")
		}
		return nil, err
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, errors.New("more than one YAML document")
	}
	cfg.ApplyDefaults()
	return &cfg, nil
}

// ApplyDefaults fills empty fields with their defaults: the Default*
// constants, announce none, request signatures optional, extension role
// agent, and dialing rules merged field by field with dialplan.DefaultRules.
// API key roles have no default: a key's power must be written down.
func (c *Config) ApplyDefaults() {
	setDefault(&c.ARI.URL, DefaultARIURL)
	setDefault(&c.ARI.User, DefaultARIUser)
	setDefault(&c.ARI.App, DefaultARIApp)
	setDefault(&c.Redis.URL, DefaultRedisURL)
	setDefault(&c.HTTP.Listen, DefaultHTTPListen)
	c.applyTenantDefaults()
}

// applyTenantDefaults is ApplyDefaults for the tenants alone.
func (c *Config) applyTenantDefaults() {
	for i := range c.Tenants {
		t := &c.Tenants[i]
		if t.Announce == "" {
			t.Announce = AnnounceNone
		}
		if t.RequestSignatures == "" {
			t.RequestSignatures = SignaturesOptional
		}
		t.DialingRules = t.DialingRules.WithDefaults()
		t.HelpRequests.applyDefaults()
		for j := range t.Extensions {
			if t.Extensions[j].Role == "" {
				t.Extensions[j].Role = RoleAgent
			}
		}
	}
}

// ApplyEnv overrides settings from the environment, read through lookup
// (pass os.LookupEnv): EARPIECE_ARI_URL, EARPIECE_ARI_USER,
// EARPIECE_ARI_PASSWORD, EARPIECE_ARI_APP, EARPIECE_REDIS_URL,
// EARPIECE_HTTP_LISTEN, EARPIECE_HTTP_PUBLISHED, EARPIECE_AUDIT_KEY,
// EARPIECE_DIALPLAN_FILE, EARPIECE_FEATURES_FILE, and the secrets named by
// secret_env and signing_secret_env. A variable that is unset or empty
// changes nothing, so an unset variable interpolated by compose cannot blank
// a setting.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) {
	c.applyTenantEnv(lookup)
	for _, o := range []struct {
		env string
		dst *string
	}{
		{EnvARIURL, &c.ARI.URL},
		{EnvARIUser, &c.ARI.User},
		{EnvARIPassword, &c.ARI.Password},
		{EnvARIApp, &c.ARI.App},
		{EnvRedisURL, &c.Redis.URL},
		{EnvAuditKey, &c.Redis.AuditKey},
		{EnvJournalDir, &c.Redis.JournalDir},
		{EnvHTTPListen, &c.HTTP.Listen},
		{EnvHTTPPublished, &c.HTTP.Published},
		{EnvDialplanFile, &c.Dialplan.ExtensionsFile},
		{EnvFeaturesFile, &c.Dialplan.FeaturesFile},
	} {
		if v, ok := lookup(o.env); ok && v != "" {
			*o.dst = v
		}
	}
}

// applyTenantEnv is ApplyEnv for the tenants' secrets alone.
func (c *Config) applyTenantEnv(lookup func(string) (string, bool)) {
	for i := range c.Tenants {
		for j := range c.Tenants[i].APIKeys {
			k := &c.Tenants[i].APIKeys[j]
			if k.SigningSecretEnv == "" {
				continue
			}
			if v, ok := lookup(k.SigningSecretEnv); ok && v != "" {
				k.SigningSecret = v
			}
		}
		for j := range c.Tenants[i].Webhooks {
			w := &c.Tenants[i].Webhooks[j]
			if w.SecretEnv == "" {
				continue
			}
			if v, ok := lookup(w.SecretEnv); ok && v != "" {
				w.Secret = v
			}
		}
	}
}

func setDefault(v *string, def string) {
	if *v == "" {
		*v = def
	}
}
