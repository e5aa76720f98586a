package tlspin

import "testing"

func TestFingerprint(t *testing.T) {
	tests := []struct {
		name string
		der  []byte
		want string
	}{
		// sha256 of the empty string, e3b0c442..., in unpadded base64.
		{name: "empty", der: nil, want: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"},
		{name: "abc", der: []byte("abc"), want: "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fingerprint(tt.der); got != tt.want {
				t.Fatalf("Fingerprint = %s, want %s", got, tt.want)
			}
		})
	}
}
