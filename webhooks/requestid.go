package webhooks

import (
	"crypto/rand"

	"github.com/labstack/echo/v5"
	"github.com/rs/zerolog"
)

// HeaderRequestID names a request in the logs. A client's own value is kept when it is usable
// (1-128 printable ASCII characters, no spaces); otherwise the server makes one. Every answer
// carries it, so a client can quote it when something failed.
const HeaderRequestID = echo.HeaderXRequestID

// ctxRequestID is the echo context key of the request id.
const ctxRequestID = "earpiece.request_id"

// requestID gives every request its id (see HeaderRequestID).
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		id := c.Request().Header.Get(HeaderRequestID)
		if len(id) > 128 || !printableASCII(id) {
			id = rand.Text()
		}
		c.Set(ctxRequestID, id)
		c.Response().Header().Set(HeaderRequestID, id)
		return next(c)
	}
}

// requestLog is the server's logger with c's request id, method and route.
func (s *Server) requestLog(c *echo.Context) zerolog.Logger {
	id, _ := c.Get(ctxRequestID).(string)
	return s.log.With().Str("request_id", id).Str("method", c.Request().Method).Str("route", c.Path()).Logger()
}
