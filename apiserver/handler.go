package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/grant"
)

// handlerFunc is an API handler. It writes a successful answer itself and
// returns nil, or writes nothing and returns why it failed, for handle to
// answer. Once it has written, it returns nil.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route registers h for pattern behind the one error adapter.
func (s *Server) route(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, s.handle(h))
}

// handle is the one place where errors become answers: a *grant.Error by its
// Kind, a *wireError by its status, anything else as 500 internal, with the
// detail logged and not sent.
func (s *Server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			status, detail := s.answer(err)
			if ra := retryAfter(err); ra > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ra.Seconds()))))
			}
			writeJSON(w, status, api.ErrorBody{Error: detail})
		}
	}
}

// wireError is a refusal the transport makes itself, before or without the
// domain: a body that is not JSON, a query parameter out of range, a store
// that does not answer a read.
type wireError struct {
	status  int
	code    string
	message string
	err     error // logged, not sent
}

func (e *wireError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s: %s: %v", e.code, e.message, e.err)
	}
	return e.code + ": " + e.message
}

func (e *wireError) Unwrap() error { return e.err }

func wireErr(status int, code, format string, args ...any) *wireError {
	return &wireError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// storeError answers a failed read of the audit store.
func storeError(err error) *wireError {
	return &wireError{status: http.StatusServiceUnavailable, code: api.CodeAuditUnavailable, message: "audit store unavailable", err: err}
}

// answer maps err to a status and the error body's detail.
func (s *Server) answer(err error) (int, api.ErrorDetail) {
	var we *wireError
	if errors.As(err, &we) {
		if we.err != nil {
			s.cfg.Logger.Warn("request failed", "code", we.code, "err", we.err)
		}
		return we.status, api.ErrorDetail{Code: we.code, Message: we.message}
	}
	var ge *grant.Error
	if errors.As(err, &ge) {
		status := statusOf(ge.Kind)
		if ge.Err != nil {
			s.cfg.Logger.Warn("request failed", "code", ge.Code, "err", ge.Err)
		}
		if status == http.StatusInternalServerError {
			s.cfg.Logger.Error("internal error", "code", ge.Code, "err", err)
		}
		return status, api.ErrorDetail{Code: ge.Code, Message: ge.Message}
	}
	s.cfg.Logger.Error("internal error", "err", err)
	return http.StatusInternalServerError, api.ErrorDetail{Code: api.CodeInternal, Message: "internal error"}
}

// retryAfter is the RetryAfter of a domain error, zero for others.
func retryAfter(err error) time.Duration {
	var ge *grant.Error
	if errors.As(err, &ge) {
		return ge.RetryAfter
	}
	return 0
}

// statusOf is the HTTP status of each kind of domain error.
func statusOf(k grant.Kind) int {
	switch k {
	case grant.KindInvalid:
		return http.StatusBadRequest
	case grant.KindUnauthenticated:
		return http.StatusUnauthorized
	case grant.KindDenied, grant.KindForbidden:
		return http.StatusForbidden
	case grant.KindNotFound:
		return http.StatusNotFound
	case grant.KindConflict:
		return http.StatusConflict
	case grant.KindUnavailable:
		return http.StatusServiceUnavailable
	case grant.KindRateLimited:
		return http.StatusTooManyRequests
	case grant.KindGone:
		return http.StatusGone
	}
	return http.StatusInternalServerError
}

// decode reads exactly one JSON object of at most api.MaxBodyBytes with no
// unknown fields into v.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return wireErr(http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge, "request body is over the %d byte limit", api.MaxBodyBytes)
		}
		return wireErr(http.StatusBadRequest, api.CodeBadBody, "read request body: %v", err)
	}
	if err := DecodeStrict(body, v); err != nil {
		return wireErr(http.StatusBadRequest, api.CodeBadJSON, "%v", err)
	}
	return nil
}

// DecodeStrict decodes exactly one JSON object into v (a pointer to a
// flat struct), refusing unknown fields, trailing data, invalid UTF-8, and
// keys repeated or in another case than the wire's (see checkKeys). It is
// the parser of every API body.
func DecodeStrict(body []byte, v any) error {
	if err := checkKeys(body, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	if dec.More() {
		return errors.New("request body: trailing data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("request body: trailing data after the JSON object")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
