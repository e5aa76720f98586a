// Package logtext bounds what text from outside can make of jitd's text
// logs. slog's TextHandler already quotes, with strconv.Quote, every
// message, key and value that holds a space, a control, a C1 control, a
// bidi override or any other character that is not printable, so no escape
// sequence and no newline of a client's reaches an operator's terminal;
// what it does not do is bound them: an SSH user name of 100 KB, sent to
// the bastion before authentication, would become a log line of 100 KB.
// Handler cuts every message, key, string value, error text and formatted
// value to a bound, saying so with an ellipsis.
package logtext

import (
	"context"
	"encoding"
	"fmt"
	"log/slog"
	"unicode/utf8"
)

// DefaultMax is the bound jitd serve --log-format text uses, in bytes of
// each message, key and value before quoting.
const DefaultMax = 1024

// Handler wraps a slog.Handler, normally a slog.TextHandler, and passes it
// records whose message, attribute keys, group names and values (strings,
// errors, and anything else the way TextHandler formats it) are at most
// max bytes, cut between characters and followed by "…(+N bytes)". Values
// within the bound reach the inner handler unchanged.
type Handler struct {
	inner slog.Handler
	max   int
}

// New returns a Handler that bounds what reaches inner to max bytes a
// value (DefaultMax when max <= 0).
func New(inner slog.Handler, max int) *Handler {
	if max <= 0 {
		max = DefaultMax
	}
	return &Handler{inner: inner, max: max}
}

// Enabled is the inner handler's.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

// Handle passes a bounded copy of r to the inner handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.cut(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

// WithAttrs bounds attrs and hands them to the inner handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	bounded := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		bounded[i] = h.attr(a)
	}
	return &Handler{inner: h.inner.WithAttrs(bounded), max: h.max}
}

// WithGroup bounds the group's name and hands it to the inner handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(h.cut(name)), max: h.max}
}

// attr returns a with its key and value bounded, groups recursively.
func (h *Handler) attr(a slog.Attr) slog.Attr {
	a.Key = h.cut(a.Key)
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(h.cut(v.String()))
	case slog.KindGroup:
		group := v.Group()
		bounded := make([]slog.Attr, len(group))
		for i, g := range group {
			bounded[i] = h.attr(g)
		}
		a.Value = slog.GroupValue(bounded...)
	case slog.KindAny:
		if text := anyText(v.Any()); len(text) > h.max {
			a.Value = slog.StringValue(h.cut(text))
		} else {
			a.Value = v
		}
	default:
		a.Value = v
	}
	return a
}

// anyText is how TextHandler prints a value of kind Any.
func anyText(v any) string {
	switch x := v.(type) {
	case error:
		return x.Error()
	case encoding.TextMarshaler:
		b, err := x.MarshalText()
		if err != nil {
			return "!ERROR:" + err.Error()
		}
		return string(b)
	case []byte:
		return string(x)
	}
	return fmt.Sprintf("%+v", v)
}

// cut returns s when it is at most h.max bytes, else its first h.max bytes
// or fewer, ending between characters, and "…(+N bytes)".
func (h *Handler) cut(s string) string {
	if len(s) <= h.max {
		return s
	}
	n := h.max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s…(+%d bytes)", s[:n], len(s)-n)
}
