package apiserver

import (
	"net/url"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
)

// FuzzTimeParams: the since and until query parameters come from any
// client. They never panic; what parseTimeParam accepts is the RFC 3339
// time written or a positive duration back from now, and always a time the
// audit store can compare with (audit.StorableTime): a time it cannot
// store must be a 400 bad_time for the client, not a store failure.
// Seeds: testdata/fuzz/FuzzTimeParams.
func FuzzTimeParams(f *testing.F) {
	for _, s := range []string{"", "2h", "90s", "-1h", "0s", "2026-11-24T09:00:00Z", "2026-11-24T09:00:00+05:30",
		"1500-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2562047h", "1e3h", "1h\x00", "P1D"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	s := &Server{cfg: Config{Clock: func() time.Time { return now }}}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := s.parseTimeParam(v)
		if err != nil {
			if _, _, err2 := s.timeRange(url.Values{"since": {v}}); err2 == nil {
				t.Fatalf("parseTimeParam(%q) refused (%v) but timeRange accepted it", v, err)
			}
			return
		}
		if !audit.StorableTime(got) {
			t.Fatalf("parseTimeParam(%q) = %s, which the audit store cannot compare with", v, got)
		}
		if v == "" {
			if !got.IsZero() {
				t.Fatalf("empty parameter gave %s, want no bound", got)
			}
			return
		}
		if want, err := time.Parse(time.RFC3339, v); err == nil {
			if !got.Equal(want) {
				t.Fatalf("parseTimeParam(%q) = %s, want %s", v, got, want)
			}
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || !got.Equal(now.Add(-d)) {
			t.Fatalf("parseTimeParam(%q) = %s: neither RFC 3339 nor a positive duration back from %s", v, got, now)
		}
	})
}
