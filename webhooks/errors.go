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
	codeNotOwnExtension     = "not_own_extension"
	codeNotOwnSession       = "not_own_session"
	codeBootstrapKey        = "bootstrap_key"
	codeNameTaken           = "name_taken"
	codeTooManyStreams      = "too_many_streams"
	codeSignatureRequired   = "signature_required"
	codeInvalidSignature    = "invalid_signature"
	codeSignatureExpired    = "signature_expired"
	codeSignatureReplayed   = "signature_replayed"
)

// apiError is an error answer decided by the edge.
type apiError struct {
	status int
	code   string
	msg    string
	field  string
	err    error // cause, for the log; never shown
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

// unavailable is a 503 for a failed dependency (Redis); err goes to the log only.
func unavailable(what string, err error) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable,
		msg: what + ": temporarily unavailable", err: err}
}

// errorResponse maps any error a handler returns to a status and the JSON body.
func errorResponse(err error) (int, errorBody) {
	body := func(code, msg, field string) errorBody {
		return errorBody{Error: errorDetail{Code: code, Message: msg, Field: field}}
	}
	var (
		ae  *apiError
		de  *app.Error
		mbe *http.MaxBytesError
		sc  echo.HTTPStatusCoder
	)
	switch {
	case errors.As(err, &ae):
		return ae.status, body(ae.code, ae.msg, ae.field)
	case errors.As(err, &de):
		status, _ := domainStatus(de.Kind)
		if status == 0 { // an *app.Error without a known Kind is the app's bug
			return http.StatusInternalServerError, body(codeInternal, "internal error", "")
		}
		return status, body(de.Code, de.Message, "")
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, body(codeBodyTooLarge,
			fmt.Sprintf("request body larger than %d bytes", mbe.Limit), "")
	}
	if status, code := domainStatus(err); status != 0 {
		msg := err.Error()
		if status >= 500 {
			msg = "temporarily unavailable"
		}
		return status, body(code, msg, "")
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, body(codeNotFound, "not found", "")
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, body(codeUnavailable, "timed out", "")
	case errors.As(err, &sc) && sc.StatusCode() != 0:
		status := sc.StatusCode()
		switch status {
		case http.StatusNotFound:
			return status, body(codeNotFound, "no such route", "")
		case http.StatusMethodNotAllowed:
			return status, body(codeMethodNotAllowed, "method not allowed on this route", "")
		case http.StatusRequestEntityTooLarge:
			return status, body(codeBodyTooLarge, "request body too large", "")
		case http.StatusUnauthorized:
			return status, body(codeUnauthorized, "unauthorized", "")
		case http.StatusForbidden:
			return status, body(codeForbidden, "forbidden", "")
		case http.StatusBadRequest:
			return status, body(codeInvalidJSON, "bad request", "")
		case http.StatusUnsupportedMediaType:
			return status, body(codeUnsupportedMedia, "unsupported media type", "")
		}
		if status >= 400 && status < 500 {
			return status, body(strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_"), http.StatusText(status), "")
		}
	}
	return http.StatusInternalServerError, body(codeInternal, "internal error", "")
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
	default:
		return 0, ""
	}
}

// handleError is echo's HTTPErrorHandler: the one place errors become answers. Server errors
// are logged here (and only here); request headers are never logged, so neither are keys.
func (s *Server) handleError(c *echo.Context, err error) {
	req := c.Request()
	if r, _ := echo.UnwrapResponse(c.Response()); r != nil && r.Committed {
		if !errors.Is(err, context.Canceled) {
			s.log.Warn().Err(err).Str("method", req.Method).Str("route", c.Path()).Msg("error after the answer was sent")
		}
		return
	}
	status, body := errorResponse(err)
	switch {
	case status >= 500 && req.Context().Err() == nil:
		s.log.Error().Err(err).Int("status", status).Str("method", req.Method).Str("route", c.Path()).Msg("request failed")
	case status == http.StatusUnauthorized:
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="earpiece"`)
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
			s.log.Error().Str("panic", fmt.Sprint(r)).Bytes("stack", debug.Stack()).
				Str("method", c.Request().Method).Str("route", c.Path()).Msg("panic in HTTP handler")
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
		return nil, newError(http.StatusBadRequest, codeInvalidJSON, "reading request body: %v", err)
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	return b, nil
}

// bindJSON reads the body and decodes it strictly into dst; see decodeStrict.
func bindJSON(c *echo.Context, dst any) ([]byte, error) {
	if ct := c.Request().Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != echo.MIMEApplicationJSON && !strings.HasSuffix(mt, "+json")) {
			return nil, newError(http.StatusUnsupportedMediaType, codeUnsupportedMedia,
				"Content-Type %q: want application/json", ct)
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
