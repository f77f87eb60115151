package testphone

import (
	"context"
	"log/slog"

	"github.com/rs/zerolog"
)

// zerologHandler sends sipgo's slog records to the phone's zerolog logger, one level quieter
// (sipgo's Info is chatty), so a test sees them only when it asks for debug output.
type zerologHandler struct {
	log    zerolog.Logger
	prefix string // group prefix for attribute keys
}

func newSlog(log zerolog.Logger) *slog.Logger {
	return slog.New(&zerologHandler{log: log.With().Str("component", "sipgo").Logger()})
}

func zerologLevel(l slog.Level) zerolog.Level {
	switch {
	case l >= slog.LevelError:
		return zerolog.ErrorLevel
	case l >= slog.LevelWarn:
		return zerolog.WarnLevel
	case l >= slog.LevelInfo:
		return zerolog.DebugLevel
	default:
		return zerolog.TraceLevel
	}
}

func (h *zerologHandler) Enabled(_ context.Context, l slog.Level) bool {
	e := h.log.WithLevel(zerologLevel(l))
	if e == nil {
		return false
	}
	e.Discard()
	return true
}

func (h *zerologHandler) Handle(_ context.Context, r slog.Record) error {
	e := h.log.WithLevel(zerologLevel(r.Level))
	if e == nil {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		e = e.Interface(h.prefix+a.Key, a.Value.Resolve().Any())
		return true
	})
	e.Msg(r.Message)
	return nil
}

func (h *zerologHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := h.log.With()
	for _, a := range attrs {
		c = c.Interface(h.prefix+a.Key, a.Value.Resolve().Any())
	}
	return &zerologHandler{log: c.Logger(), prefix: h.prefix}
}

func (h *zerologHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &zerologHandler{log: h.log, prefix: h.prefix + name + "."}
}
