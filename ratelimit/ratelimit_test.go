package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		key       string
		at        time.Duration
		allowed   bool
		first     bool
		retryOver time.Duration // RetryAfter must be over this (refusals)
	}
	tests := []struct {
		name  string
		limit Limit
		steps []step
	}{
		{"burst then refuse, recorded once", Limit{3, time.Minute}, []step{
			{"a", 0, true, false, 0}, {"a", 0, true, false, 0}, {"a", 0, true, false, 0},
			{"a", 0, false, true, 19 * time.Second}, {"a", time.Second, false, false, 18 * time.Second},
		}},
		{"keys are separate", Limit{1, time.Minute}, []step{
			{"a", 0, true, false, 0}, {"b", 0, true, false, 0}, {"a", 0, false, true, 59 * time.Second},
		}},
		{"refill after one interval", Limit{2, time.Minute}, []step{
			{"a", 0, true, false, 0}, {"a", 0, true, false, 0}, {"a", 0, false, true, 29 * time.Second},
			{"a", 30 * time.Second, true, false, 0}, {"a", 30 * time.Second, false, false, 29 * time.Second},
		}},
		{"a new period records again", Limit{1, time.Minute}, []step{
			{"a", 0, true, false, 0}, {"a", time.Second, false, true, 0},
			{"a", 30 * time.Second, false, false, 0}, {"a", 61 * time.Second, true, false, 0},
			{"a", 62 * time.Second, false, true, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				v := l.Allow(s.key, t0.Add(s.at))
				if v.Allowed != s.allowed || v.FirstRefusal != s.first {
					t.Fatalf("step %d (%s at %s): got %+v, want allowed=%v first=%v", i, s.key, s.at, v, s.allowed, s.first)
				}
				if !v.Allowed && (v.RetryAfter <= s.retryOver || v.RetryAfter > tt.limit.Per) {
					t.Fatalf("step %d: RetryAfter %s, want in (%s, %s]", i, v.RetryAfter, s.retryOver, tt.limit.Per)
				}
			}
		})
	}
}

func TestInvalidLimit(t *testing.T) {
	for _, l := range []Limit{{0, time.Minute}, {1, 0}, {-1, time.Second}} {
		if _, err := New(l); err == nil {
			t.Errorf("New(%v) accepted an invalid limit", l)
		}
	}
}

// TestBoundedKeys checks that inventing keys cannot grow the limiter past
// MaxKeys.
func TestBoundedKeys(t *testing.T) {
	l, err := New(Limit{1, time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for i := range MaxKeys + 50 {
		l.Allow(fmt.Sprint(i), t0.Add(time.Duration(i)))
	}
	if n := len(l.buckets); n > MaxKeys {
		t.Fatalf("%d keys remembered, want at most %d", n, MaxKeys)
	}
}
