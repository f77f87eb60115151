package ari

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinels matched by errors.Is against an *Error, by HTTP status. The
// errorResponses of each operation in the Swagger files say what a status
// means there (e.g. 409 "Channel not in a Stasis application", 422 "Channel
// not in Stasis application" on addChannel).
var (
	ErrBadRequest         = errors.New("ari: bad request")         // 400
	ErrUnauthorized       = errors.New("ari: unauthorized")        // 401: wrong ARI user or password
	ErrNotFound           = errors.New("ari: not found")           // 404
	ErrConflict           = errors.New("ari: conflict")            // 409
	ErrPreconditionFailed = errors.New("ari: precondition failed") // 412
	ErrUnprocessable      = errors.New("ari: unprocessable")       // 422
	ErrServer             = errors.New("ari: server error")        // 5xx
)

// Error is a non-2xx answer from ARI (REST call or WebSocket upgrade).
// Message is Asterisk's {"message": ...} text, or the start of the body if
// it had none. It never holds credentials: they travel only in a header.
type Error struct {
	Method  string // HTTP method
	Path    string // path below Config.BaseURL, without the query
	Status  int    // HTTP status code
	Message string
}

// Error returns e.g. `ari: POST /channels/x/snoop: 404 Not Found: Channel not found`.
func (e *Error) Error() string {
	s := fmt.Sprintf("ari: %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is makes errors.Is(err, ErrNotFound) and the other sentinels work.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.Status == http.StatusBadRequest
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrPreconditionFailed:
		return e.Status == http.StatusPreconditionFailed
	case ErrUnprocessable:
		return e.Status == http.StatusUnprocessableEntity
	case ErrServer:
		return e.Status >= 500 && e.Status <= 599
	}
	return false
}
