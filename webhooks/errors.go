package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/store"
)

// Stable error codes of the edge itself. *app.Error codes pass through unchanged.
const (
	codeUnauthorized        = "unauthorized"
	codeForbidden           = "forbidden"
	codeNotFound            = "not_found"
	codeMethodNotAllowed    = "method_not_allowed"
	codeConflict            = "conflict"
	codeInvalid             = "invalid"
	codeUnavailable         = "unavailable"
	codeInternal            = "internal"
	codeInvalidJSON         = "invalid_json"
	codeUnknownField        = "unknown_field"
	codeInvalidField        = "invalid_field"
	codeBodyTooLarge        = "body_too_large"
	codeUnsupportedMedia    = "unsupported_media_type"
	codeIdempotencyMismatch = "idempotency_mismatch"
	codeIdempotencyBusy     = "idempotency_in_progress"
	codeBootstrapKey        = "bootstrap_key"
	codeNameTaken           = "name_taken"
	codeTooManyStreams      = "too_many_streams"
	codeSignatureRequired   = "signature_required"
	codeInvalidSignature    = "invalid_signature"
	codeSignatureExpired    = "signature_expired"
	codeSignatureReplayed   = "signature_replayed"
	codeRateLimited         = "rate_limited"
	codeHeadersTooLarge     = "headers_too_large"
	codeInvalidHeader       = "invalid_header"
	codePreconditionFailed  = "precondition_failed"
)

// countedNotLogged are the codes of refusals that a flood makes by the thousand: they are
// counted in metrics (rate limits, stream caps), never logged one by one.
var countedNotLogged = map[string]bool{codeTooManyStreams: true, codeRateLimited: true}

// apiError is an error answer decided by the edge.
type apiError struct {
	status int
	code   string
	msg    string
	field  string
	err    error // cause, for the log; never shown
	// retryAfter, when set, is sent as Retry-After (429, and 503 too_many_streams).
	retryAfter time.Duration
}

func (e *apiError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.status, e.code, e.msg, e.err)
	}
	return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg)
}

func (e *apiError) Unwrap() error { return e.err }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// fieldError is a 422 naming the request field at fault.
func fieldError(field, format string, args ...any) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, code: codeInvalidField, field: field,
		msg: field + ": " + fmt.Sprintf(format, args...)}
}

// unavailable is a 503 for a failed dependency (Redis) while doing what; err goes to the log
// only, and the client gets the fixed message of code unavailable.
func unavailable(what string, err error) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable,
		msg: what, err: err}
}

// failureMessages are the messages of server-side failures (5xx), one per code: a client learns
// what failed and that a retry may work, never why (the cause is logged, see handleError).
var failureMessages = map[string]string{
	codeInternal:               "internal error",
	codeUnavailable:            "temporarily unavailable; retry later",
	codeTooManyStreams:         "too many event streams on this instance; retry later",
	app.RefuseStoreUnavailable: "the state store is temporarily unavailable; retry later",
	app.RefuseAsterisk:         "Asterisk is temporarily unavailable; retry later",
	"shutting_down":            "earpiece is shutting down; retry later",
	"timeout":                  "timed out; retry later",
}

// domainMessages are the messages of the app's bare domain errors, one per code.
var domainMessages = map[string]string{
	codeNotFound:  "not found",
	codeForbidden: "forbidden",
	codeConflict:  "conflict",
	codeInvalid:   "invalid request",
	// A bare app.ErrPrecondition; the app's own carry their message.
	codePreconditionFailed: "precondition failed",
}

// errorResponse maps any error a handler returns to a status and the JSON body. Messages are
// fixed: the edge writes its own from the request, never from a cause; an *app.Error's message
// is the app's, written for clients; and every server-side failure (5xx) gets the message of
// its code (failureMessages), whatever the error says.
func errorResponse(err error) (int, errorBody) {
	status, d := classify(err)
	if status >= 500 {
		msg, ok := failureMessages[d.Code]
		if !ok {
			msg = failureMessages[codeUnavailable]
			if status == http.StatusInternalServerError {
				msg = failureMessages[codeInternal]
			}
		}
		d.Message, d.Field, d.Fields = msg, "", nil
	}
	return status, errorBody{Error: d}
}

// classify finds err's status and code (and, below 500, its message and field).
func classify(err error) (int, errorDetail) {
	detail := func(code, msg, field string) errorDetail {
		return errorDetail{Code: code, Message: msg, Field: field}
	}
	var (
		ae  *apiError
		de  *app.Error
		mbe *http.MaxBytesError
		sc  echo.HTTPStatusCoder
	)
	switch {
	case errors.As(err, &ae):
		return ae.status, detail(ae.code, ae.msg, ae.field)
	case errors.As(err, &de):
		status, _ := domainStatus(de.Kind)
		if status == 0 { // an *app.Error without a known Kind is the app's bug
			return http.StatusInternalServerError, detail(codeInternal, "", "")
		}
		d := detail(de.Code, de.Message, de.Field)
		d.Fields = de.Fields
		return status, d
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, detail(codeBodyTooLarge,
			fmt.Sprintf("request body larger than %d bytes", mbe.Limit), "")
	}
	if status, code := domainStatus(err); status != 0 {
		return status, detail(code, domainMessages[code], "")
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, detail(codeNotFound, "not found", "")
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, detail(codeUnavailable, "", "")
	case errors.As(err, &sc) && sc.StatusCode() != 0:
		status := sc.StatusCode()
		switch status {
		case http.StatusNotFound:
			return status, detail(codeNotFound, "no such route", "")
		case http.StatusMethodNotAllowed:
			return status, detail(codeMethodNotAllowed, "method not allowed on this route", "")
		case http.StatusRequestEntityTooLarge:
			return status, detail(codeBodyTooLarge, "request body too large", "")
		case http.StatusUnauthorized:
			return status, detail(codeUnauthorized, "unauthorized", "")
		case http.StatusForbidden:
			return status, detail(codeForbidden, "forbidden", "")
		case http.StatusBadRequest:
			return status, detail(codeInvalidJSON, "bad request", "")
		case http.StatusUnsupportedMediaType:
			return status, detail(codeUnsupportedMedia, "unsupported media type", "")
		}
		if status >= 400 && status < 500 {
			return status, detail(strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_"), http.StatusText(status), "")
		}
	}
	return http.StatusInternalServerError, detail(codeInternal, "", "")
}

// domainStatus maps the app's domain errors.
func domainStatus(err error) (int, string) {
	switch {
	case err == nil:
		return 0, ""
	case errors.Is(err, app.ErrNotFound):
		return http.StatusNotFound, codeNotFound
	case errors.Is(err, app.ErrForbidden):
		return http.StatusForbidden, codeForbidden
	case errors.Is(err, app.ErrConflict):
		return http.StatusConflict, codeConflict
	case errors.Is(err, app.ErrInvalid):
		return http.StatusUnprocessableEntity, codeInvalid
	case errors.Is(err, app.ErrUnavailable):
		return http.StatusServiceUnavailable, codeUnavailable
	case errors.Is(err, app.ErrPrecondition):
		return http.StatusPreconditionFailed, codePreconditionFailed
	default:
		return 0, ""
	}
}

// handleError is echo's HTTPErrorHandler: the one place errors become answers. A server-side
// failure's cause is logged here, once, with the request id the client got in X-Request-Id;
// request headers are never logged, so neither are keys.
func (s *Server) handleError(c *echo.Context, err error) {
	req := c.Request()
	log := s.requestLog(c)
	if r, _ := echo.UnwrapResponse(c.Response()); r != nil && r.Committed {
		if !errors.Is(err, context.Canceled) {
			log.Warn().Err(err).Msg("error after the answer was sent")
		}
		return
	}
	status, body := errorResponse(err)
	switch {
	case countedNotLogged[body.Error.Code]:
	case status >= 500 && !errors.Is(err, context.Canceled):
		log.Error().Err(err).Int("status", status).Str("code", body.Error.Code).Msg("request failed")
	case status == http.StatusUnauthorized:
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="earpiece"`)
	}
	var ae *apiError
	if errors.As(err, &ae) && ae.retryAfter > 0 {
		c.Response().Header().Set("Retry-After", retryAfterSeconds(ae.retryAfter))
	}
	var werr error
	if req.Method == http.MethodHead {
		werr = c.NoContent(status)
	} else {
		werr = c.JSON(status, body)
	}
	if werr != nil && req.Context().Err() == nil {
		s.log.Debug().Err(werr).Msg("writing error answer")
	}
}

// recoverPanics turns a panic in a handler into a logged 500 JSON answer.
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) (err error) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			if r == http.ErrAbortHandler { //nolint:errorlint // sentinel panic value, as net/http compares it
				panic(r)
			}
			log := s.requestLog(c)
			log.Error().Str("panic", fmt.Sprint(r)).Bytes("stack", debug.Stack()).Msg("panic in HTTP handler")
			err = newError(http.StatusInternalServerError, codeInternal, "internal error")
		}()
		return next(c)
	}
}

// limitBody refuses bodies above MaxBodyBytes: at once when Content-Length says so, else when
// reading passes the limit (the read fails with *http.MaxBytesError, mapped to 413).
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		req := c.Request()
		if req.ContentLength > s.cfg.MaxBodyBytes {
			return newError(http.StatusRequestEntityTooLarge, codeBodyTooLarge,
				"request body larger than %d bytes", s.cfg.MaxBodyBytes)
		}
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = http.MaxBytesReader(c.Response(), req.Body, s.cfg.MaxBodyBytes)
		}
		return next(c)
	}
}

// limitHeaders refuses a request line and headers above MaxHeaderBytes with a JSON 431 (up to
// twice that, net/http reads them; beyond, it answers 431 itself, in plain text).
func (s *Server) limitHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		req := c.Request()
		n := len(req.Method) + len(req.RequestURI) + len(req.Proto) + len(req.Host) + 4
		for k, vs := range req.Header {
			for _, v := range vs {
				n += len(k) + len(v) + 4 // ": " and CRLF
			}
		}
		if n > s.cfg.MaxHeaderBytes {
			return newError(http.StatusRequestHeaderFieldsTooLarge, codeHeadersTooLarge,
				"request line and headers larger than %d bytes", s.cfg.MaxHeaderBytes)
		}
		return next(c)
	}
}

// readBody reads the (size-limited) request body once; callers that need the raw bytes
// (signatures, idempotency) and the decoded value share it.
func readBody(c *echo.Context) ([]byte, error) {
	req := c.Request()
	if req.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, &apiError{status: http.StatusBadRequest, code: codeInvalidJSON,
			msg: "the request body could not be read", err: err}
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	return b, nil
}

// bindJSON reads the body and decodes it strictly into dst; see decodeStrict.
func bindJSON(c *echo.Context, dst any) ([]byte, error) {
	if ct := c.Request().Header.Get(echo.HeaderContentType); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || (mt != echo.MIMEApplicationJSON && !strings.HasSuffix(mt, "+json")) {
			return nil, newError(http.StatusUnsupportedMediaType, codeUnsupportedMedia,
				"Content-Type %q: want application/json", ct)
		}
		// JSON is UTF-8 (RFC 8259 section 8.1); a body declared otherwise would be read wrong.
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
			return nil, newError(http.StatusUnsupportedMediaType, codeUnsupportedMedia,
				"Content-Type %q: JSON bodies are UTF-8 (charset=utf-8 or none)", ct)
		}
	}
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	return body, decodeStrict(body, dst)
}

// decodeStrict decodes one JSON object into dst: malformed JSON → 400 invalid_json, a field
// dst does not have → 400 unknown_field naming it, a value of the wrong JSON type → 422
// invalid_field naming it.
func decodeStrict(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return newError(http.StatusBadRequest, codeInvalidJSON, "request body is empty: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return newError(http.StatusBadRequest, codeInvalidJSON, "unexpected data after the JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return newError(http.StatusBadRequest, codeInvalidJSON, "malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return newError(http.StatusBadRequest, codeInvalidJSON, "truncated JSON")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return newError(http.StatusBadRequest, codeInvalidJSON, "body must be a JSON object, not %s", typ.Value)
		}
		return fieldError(typ.Field, "must be a %s, not %s", jsonTypeName(typ.Type.Kind().String()), typ.Value)
	}
	// encoding/json has no typed error for DisallowUnknownFields: `json: unknown field "x"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unq, uerr := strconv.Unquote(name); uerr == nil {
			name = unq
		}
		return &apiError{status: http.StatusBadRequest, code: codeUnknownField, field: name,
			msg: fmt.Sprintf("unknown field %q", name)}
	}
	return newError(http.StatusBadRequest, codeInvalidJSON, "invalid JSON: %v", err)
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	default:
		return "number"
	}
}
