package recstore

import (
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	tests := []struct {
		in      string
		want    Location
		wantErr string
	}{
		{in: "", want: Location{}},
		{in: "local", want: Location{}},
		{in: "s3://jit-recordings", want: Location{Bucket: "jit-recordings"}},
		{in: "s3://jit.rec/prod/eu/", want: Location{Bucket: "jit.rec", Prefix: "prod/eu"}},
		{in: "/var/lib/recordings", wantErr: "want local or s3://"},
		{in: "https://bucket/x", wantErr: "want local or s3://"},
		{in: "s3://ab", wantErr: "3 to 63"},
		{in: "s3://Upper", wantErr: "lower-case"},
		{in: "s3://-bucket", wantErr: "start and end"},
		{in: "s3://a..b", wantErr: "two dots"},
		{in: "s3://key:secret@bucket", wantErr: "credentials come from the environment"},
		{in: "s3://bucket:9000/x", wantErr: "only s3://BUCKET/PREFIX"},
		{in: "s3://bucket/a//b", wantErr: "empty"},
		{in: "s3://bucket/a/../b", wantErr: `".."`},
		{in: "s3://bucket/a?x=1", wantErr: "only s3://BUCKET/PREFIX"},
		{in: "s3://bucket/" + strings.Repeat("a", maxPrefix+1), wantErr: "at most 512"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLocation(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseLocation(%q) = %+v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseLocation(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if again, err := ParseLocation(got.String()); err != nil || again != got {
				t.Fatalf("ParseLocation(%q) = %+v, %v; want it back", got.String(), again, err)
			}
		})
	}
}

func TestNameAndKey(t *testing.T) {
	st, err := Open(Config{Spool: "/data/recordings"})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"/data/recordings/2026/12/01/x.cast.zst": "2026/12/01/x.cast.zst",
		"2026/12/01/x.cast.zst":                  "2026/12/01/x.cast.zst",
		"/elsewhere/x.cast.zst":                  "/elsewhere/x.cast.zst",
		"":                                       "",
	} {
		if got := st.Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
	if got := (Location{Bucket: "b", Prefix: "p/q"}).key("2026/x.cast.zst"); got != "p/q/2026/x.cast.zst" {
		t.Errorf("key = %q", got)
	}
}

// FuzzParseLocation: no input panics, and what parses prints back to
// itself and stays within S3's key limits.
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{"", "local", "s3://bucket", "s3://b.b-b/p/q", "s3://bucket/../x", "s3://%zz", "s3://bucket/\x00", "s3:///x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLocation(s)
		if err != nil {
			return
		}
		again, err := ParseLocation(l.String())
		if err != nil || again != l {
			t.Fatalf("ParseLocation(%q) = %+v; its String %q parses to %+v, %v", s, l, l.String(), again, err)
		}
		if len(l.Prefix) > maxPrefix || strings.HasPrefix(l.Prefix, "/") || strings.HasSuffix(l.Prefix, "/") {
			t.Fatalf("ParseLocation(%q): prefix %q", s, l.Prefix)
		}
	})
}
