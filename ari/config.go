package ari

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/rs/zerolog"
)

// Defaults for the zero fields of Config.
const (
	DefaultRequestTimeout  = 10 * time.Second
	DefaultMaxConns        = 32 // Asterisk's http.conf sessionlimit defaults to 100
	DefaultEventBuffer     = 1024
	DefaultPingInterval    = 5 * time.Second
	DefaultReconnectMin    = 100 * time.Millisecond
	DefaultReconnectMax    = 10 * time.Second
	DefaultReplacedBackoff = 30 * time.Second
	DefaultOverflowWait    = time.Second
)

// Config configures a Client. Zero durations and sizes take the defaults
// above. main fills it from flags and the environment; this package reads
// neither.
type Config struct {
	// BaseURL is ARI's root, e.g. http://127.0.0.1:8088/ari (http or https).
	// The events WebSocket is <BaseURL>/events?app=<App>&subscribeAll=false
	// with the scheme changed to ws or wss.
	BaseURL string
	// User and Password are an ari.conf user. They are sent only as HTTP
	// Basic authorization, on REST calls and on the WebSocket upgrade (never
	// as api_key in a URL), and never logged or marshalled.
	User     string
	Password string `json:"-"`
	// App is the Stasis application name.
	App string
	// RequestTimeout bounds each REST call unless the caller's ctx ends
	// sooner, and the WebSocket handshake.
	RequestTimeout time.Duration
	// MaxConns bounds the HTTP connections to Asterisk (MaxConnsPerHost and
	// MaxIdleConnsPerHost), kept alive and reused.
	MaxConns int
	// EventBuffer is the size of the event queue behind Events.
	EventBuffer int
	// OverflowWait is how long the reader waits for room in a full event
	// queue before it drops the event (and then reports Desynced).
	OverflowWait time.Duration
	// PingInterval is how often the WebSocket is pinged; a ping unanswered
	// for another PingInterval ends the connection, so a dead peer is noticed
	// within 2*PingInterval.
	PingInterval time.Duration
	// ReconnectMin and ReconnectMax bound the exponential backoff (with
	// jitter) between connection attempts. The backoff starts again from
	// ReconnectMin after a connection that stayed up at least ReconnectMax.
	ReconnectMin, ReconnectMax time.Duration
	// ReplacedBackoff is how long to wait before connecting again after
	// Asterisk said another WebSocket took over App (ApplicationReplaced),
	// so two instances do not take the app from each other in a loop.
	ReplacedBackoff time.Duration
	// Logger receives the client's logs; the zero value logs nothing.
	Logger zerolog.Logger `json:"-"`
	// HTTPClient, if set, replaces the client built from MaxConns. It is used
	// for REST calls and the WebSocket handshake; its Transport must support
	// protocol upgrades (http.Transport does).
	HTTPClient *http.Client `json:"-"`
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.BaseURL == "" {
		errs = append(errs, errors.New("ari: BaseURL is empty"))
	} else if u, err := url.Parse(c.BaseURL); err != nil {
		errs = append(errs, fmt.Errorf("ari: BaseURL: %w", redactURLError(err)))
	} else {
		if u.Scheme != "http" && u.Scheme != "https" {
			errs = append(errs, fmt.Errorf("ari: BaseURL scheme %q is not http or https", u.Scheme))
		}
		if u.Host == "" {
			errs = append(errs, errors.New("ari: BaseURL has no host"))
		}
		if u.User != nil {
			errs = append(errs, errors.New("ari: BaseURL holds credentials; set User and Password instead"))
		}
		if u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, errors.New("ari: BaseURL has a query or fragment"))
		}
	}
	if c.User == "" {
		errs = append(errs, errors.New("ari: User is empty"))
	}
	if c.Password == "" {
		errs = append(errs, errors.New("ari: Password is empty"))
	}
	if c.App == "" {
		errs = append(errs, errors.New("ari: App is empty"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"RequestTimeout", c.RequestTimeout},
		{"OverflowWait", c.OverflowWait},
		{"PingInterval", c.PingInterval},
		{"ReconnectMin", c.ReconnectMin},
		{"ReconnectMax", c.ReconnectMax},
		{"ReplacedBackoff", c.ReplacedBackoff},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("ari: %s %v is negative", d.name, d.v))
		}
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("ari: MaxConns %d is negative", c.MaxConns))
	}
	if c.EventBuffer < 0 {
		errs = append(errs, fmt.Errorf("ari: EventBuffer %d is negative", c.EventBuffer))
	}
	d := c.withDefaults()
	if d.ReconnectMin > d.ReconnectMax {
		errs = append(errs, fmt.Errorf("ari: ReconnectMin %v is above ReconnectMax %v", d.ReconnectMin, d.ReconnectMax))
	}
	return errors.Join(errs...)
}

// redactURLError drops the URL from a parse error: it may hold a password.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.OverflowWait, DefaultOverflowWait)
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.ReconnectMin, DefaultReconnectMin)
	def(&c.ReconnectMax, DefaultReconnectMax)
	def(&c.ReplacedBackoff, DefaultReplacedBackoff)
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = DefaultEventBuffer
	}
	return c
}

// String describes c with the password redacted.
func (c Config) String() string {
	return fmt.Sprintf("ari.Config{BaseURL:%q User:%q Password:%s App:%q}", redactedURL(c.BaseURL), c.User, redacted(c.Password), c.App)
}

// GoString is String, so %#v does not print the password either.
func (c Config) GoString() string { return c.String() }

// MarshalZerologObject logs c with the password redacted.
func (c Config) MarshalZerologObject(e *zerolog.Event) {
	e.Str("base_url", redactedURL(c.BaseURL)).
		Str("user", c.User).
		Str("password", redacted(c.Password)).
		Str("app", c.App).
		Dur("request_timeout", c.RequestTimeout).
		Int("max_conns", c.MaxConns).
		Int("event_buffer", c.EventBuffer).
		Dur("ping_interval", c.PingInterval).
		Dur("reconnect_min", c.ReconnectMin).
		Dur("reconnect_max", c.ReconnectMax).
		Dur("replaced_backoff", c.ReplacedBackoff)
}

func redacted(secret string) string {
	if secret == "" {
		return `""`
	}
	return "[redacted]"
}

// redactedURL hides a password someone put in BaseURL despite Validate.
func redactedURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "[unparsable]"
	}
	return u.Redacted()
}
