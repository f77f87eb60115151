package ari

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Client talks to one Asterisk over ARI: REST calls on any goroutine, and
// the events WebSocket owned by Run. Create it with New.
type Client struct {
	cfg   Config
	base  string // BaseURL without a trailing slash
	wsURL string
	http  *http.Client
	log   zerolog.Logger

	q     *queue
	out   chan Event // Events; unbuffered, fed from q
	ran   atomic.Bool
	stats stats
}

// New validates cfg, fills in the defaults and returns a Client. It does not
// contact Asterisk; call Run for events.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, err // Validate parsed it already
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	base := u.String()

	ws := *u
	ws.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	ws.Path += "/events"
	ws.RawQuery = url.Values{"app": {cfg.App}, "subscribeAll": {"false"}}.Encode()

	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: newTransport(cfg.MaxConns)}
	}
	return &Client{
		cfg:   cfg,
		base:  base,
		wsURL: ws.String(),
		http:  hc,
		log:   cfg.Logger.With().Str("app", cfg.App).Logger(),
		q:     newQueue(cfg.EventBuffer),
		out:   make(chan Event),
	}, nil
}

// newTransport bounds the connections to Asterisk and keeps them alive for
// reuse.
func newTransport(maxConns int) *http.Transport {
	return &http.Transport{
		// No Proxy: this package does not read the environment, and ARI is
		// reached directly.
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:     maxConns,
		MaxIdleConnsPerHost: maxConns,
		MaxIdleConns:        maxConns,
		// Below Asterisk's http.conf session_keep_alive (15 s by default), so
		// we do not send a POST on a connection Asterisk is closing: such a
		// request cannot be retried.
		IdleConnTimeout:       10 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// maxErrorBody bounds how much of a non-2xx body is read.
const maxErrorBody = 64 << 10

// do performs one REST call. path is below BaseURL with its segments already
// escaped (use seg); query may be nil; body, if not nil, is sent as JSON; out,
// if not nil, receives the JSON answer, or the raw body if it is a *[]byte.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()

	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("ari: %s %s: encoding body: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return fmt.Errorf("ari: %s %s: %w", method, path, err)
	}
	req.SetBasicAuth(c.cfg.User, c.cfg.Password)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("ari: %s %s: %w", method, path, transportError(err))
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
	}()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(method, path, resp)
	}
	switch out := out.(type) {
	case nil:
		return nil
	case *[]byte:
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("ari: %s %s: reading body: %w", method, path, err)
		}
		*out = b
		return nil
	default:
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("ari: %s %s: decoding answer: %w", method, path, err)
		}
		return nil
	}
}

// transportError keeps the cause of a failed request but drops the URL
// net/http puts in it; our error already names method and path.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// responseError turns a non-2xx answer into an *Error, with Asterisk's
// {"message": "..."} if the body has one ({"error": "..."} on some answers,
// such as originate's 500 "Allocation failed").
func responseError(method, path string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{Method: method, Path: path, Status: resp.StatusCode}
	var m struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	switch {
	case json.Unmarshal(b, &m) == nil && m.Message != "":
		e.Message = m.Message
	case m.Error != "":
		e.Message = m.Error
	default:
		e.Message = strings.TrimSpace(string(b))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "..."
		}
	}
	return e
}

// seg escapes one path segment (an id or name). Asterisk's ARI decodes each
// segment on its own after splitting the path (res_ari: no_decode_uri, then
// ast_uri_decode per segment), so ids holding "/" or ";" (a Local channel's
// "<id>;2" half) survive.
func seg(s string) string { return url.PathEscape(s) }

// query builds url.Values from name/value pairs, leaving out empty values so
// Asterisk applies its defaults.
func query(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	return q
}

// itoa is strconv.Itoa that leaves zero out (ARI's default applies).
func itoa(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

// boolParam is "true" or "" (ARI's boolean parameters default to false).
func boolParam(b bool) string {
	if b {
		return "true"
	}
	return ""
}

// seconds converts a timeout to ARI's whole seconds, rounding up; zero or
// negative leaves the parameter out.
func seconds(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return fmt.Sprint(int64((d + time.Second - 1) / time.Second))
}

// joinIDs joins ids with commas: Asterisk reads an allowMultiple parameter as
// one comma-separated value (a repeated parameter replaces the earlier one).
func joinIDs[T ~string](ids []T) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return strings.Join(s, ",")
}

// variablesBody is the JSON body of the calls that take "variables"
// (paramType body, dataType containers in channels.json and bridges.json).
func variablesBody(vars map[string]string) any {
	if len(vars) == 0 {
		return nil
	}
	return struct {
		Variables map[string]string `json:"variables"`
	}{vars}
}

// CloseIdleConnections closes the idle keep-alive connections to Asterisk;
// main calls it at shutdown, once the app (which makes every REST call) has
// stopped and Run has returned.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }
