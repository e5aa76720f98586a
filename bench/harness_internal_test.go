package bench

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{name: "empty", in: nil, p: 50, want: 0},
		{name: "one", in: []time.Duration{7}, p: 99, want: 7},
		{name: "median of unsorted", in: []time.Duration{5, 1, 4, 2, 3}, p: 50, want: 3},
		{name: "p99 of 30 is the maximum", in: seq(30), p: 99, want: 30},
		{name: "p50 of 30 is the 15th", in: seq(30), p: 50, want: 15},
		{name: "p0 is the minimum", in: seq(10), p: 0, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.in, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
			}
		})
	}
}

// seq returns 1..n in descending order, so sorting matters.
func seq(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(n - i)
	}
	return out
}
