package policy

import (
	"strings"
	"testing"
	"time"
)

func TestConsoleShareMax(t *testing.T) {
	tests := []struct {
		name    string
		section string
		want    time.Duration
		wantErr string
	}{
		{name: "default", want: DefaultShareMax},
		{name: "set", section: "console: {share_max: 72h}\n", want: 72 * time.Hour},
		{name: "empty section", section: "console: {}\n", want: DefaultShareMax},
		{name: "over the limit", section: "console: {share_max: 200h}\n", wantErr: ":10: console: share_max 200h0m0s exceeds the limit 168h0m0s"},
		{name: "not a duration", section: "console: {share_max: soon}\n", wantErr: `:10: console: share_max "soon" is not a positive duration`},
		{name: "below a minute", section: "console: {share_max: 30s}\n", wantErr: ":10: console: share_max 30s is below the shortest share link life 1m0s"},
		{name: "one minute", section: "console: {share_max: 1m}\n", want: time.Minute},
		{name: "negative", section: "console: {share_max: -1h}\n", wantErr: "is not a positive duration"},
		{name: "unknown field", section: "console: {share: 1h}\n", wantErr: "share"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.yaml", []byte(base+tt.section))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Console.ShareMax != tt.want {
				t.Errorf("share_max = %v, want %v", p.Console.ShareMax, tt.want)
			}
		})
	}
}
