package main

import (
	"testing"
	"time"

	"github.com/jitssh/jitssh/ratelimit"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want ratelimit.Limit
		ok   bool
	}{
		{"10/1m", ratelimit.Limit{Events: 10, Per: time.Minute}, true},
		{"60/1m0s", ratelimit.Limit{Events: 60, Per: time.Minute}, true},
		{"1/1s", ratelimit.Limit{Events: 1, Per: time.Second}, true},
		{"10", ratelimit.Limit{}, false},
		{"ten/1m", ratelimit.Limit{}, false},
		{"10/soon", ratelimit.Limit{}, false},
		{"0/1m", ratelimit.Limit{}, false},
		{"5/-1m", ratelimit.Limit{}, false},
	}
	for _, tt := range tests {
		got, err := parseRate(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("parseRate(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	if s := rateString(ratelimit.Limit{Events: 10, Per: time.Minute}); s != "10/1m0s" {
		t.Errorf("rateString = %q", s)
	}
}
