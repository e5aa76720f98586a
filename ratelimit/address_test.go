package ratelimit

import "testing"

func TestAddressKey(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"192.0.2.7:40000", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:22", "192.0.2.7"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:443", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:22", "fe80::/64"},
		{"not an address", "not an address"},
	}
	for _, tt := range tests {
		if got := AddressKey(tt.addr); got != tt.want {
			t.Errorf("AddressKey(%q) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}
