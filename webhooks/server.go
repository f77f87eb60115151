// Package webhooks is earpiece's HTTP edge, served by echo: health and readiness probes and
// Prometheus metrics now; the /v1 API for CRMs and dashboards builds on it. Handlers stay thin:
// bind, validate, call the app, answer; errors become JSON in one place.
package webhooks

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// Check is a readiness probe of one dependency (Redis, the ARI socket...).
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Config configures the server.
type Config struct {
	Listen   string
	Checks   []Check
	Gatherer prometheus.Gatherer // metrics source (default prometheus.DefaultGatherer)
	Logger   zerolog.Logger
	// ReadTimeout, WriteTimeout, IdleTimeout bound every connection (10 s, 30 s, 120 s).
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

// Server is the HTTP server.
type Server struct {
	cfg  Config
	echo *echo.Echo
	http *http.Server
}

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// JSONError writes {"error":{"code","message"}} with status.
func JSONError(c *echo.Context, status int, code, message string) error {
	var b errorBody
	b.Error.Code, b.Error.Message = code, message
	return c.JSON(status, b)
}

// New builds the server (not yet listening).
func New(cfg Config) *Server {
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	e := echo.New()
	s := &Server{cfg: cfg, echo: e}
	e.GET("/healthz", func(c *echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", s.ready)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})))
	s.http = &http.Server{
		Addr:              cfg.Listen,
		Handler:           e,
		ReadTimeout:       cfg.ReadTimeout,
		ReadHeaderTimeout: cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
	return s
}

// Handler is the server's router (for tests).
func (s *Server) Handler() http.Handler { return s.echo }

// ready answers 200 when every check passes, 503 with the failures otherwise.
func (s *Server) ready(c *echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	failed := map[string]string{}
	for _, ch := range s.cfg.Checks {
		if err := ch.Fn(ctx); err != nil {
			failed[ch.Name] = err.Error()
		}
	}
	if len(failed) > 0 {
		return c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "failed": failed})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// ListenAndServe serves until Shutdown; it returns nil after a graceful shutdown.
func (s *Server) ListenAndServe() error {
	if err := s.http.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }
