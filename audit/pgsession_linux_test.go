package audit

import (
	"context"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPGClientKeepalive reads the socket options of a PostgreSQL store's
// write connection: jitd's end of the keepalives and the user timeout, by
// default and from the URL's libpq parameters.
func TestPGClientKeepalive(t *testing.T) {
	u := pgURL(t)
	tests := []struct {
		name                          string
		params                        string
		keepalive, idle, intvl, count int
		userTimeoutMS                 int
	}{
		{name: "defaults", keepalive: 1, idle: 10, intvl: 5, count: 3, userTimeoutMS: 30000},
		{name: "the URL's", params: "&keepalives_idle=7&keepalives_interval=2&keepalives_count=4&tcp_user_timeout=5000",
			keepalive: 1, idle: 7, intvl: 2, count: 4, userTimeoutMS: 5000},
		{name: "off", params: "&keepalives=0", keepalive: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := OpenURL(ctx, u+tc.params, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			conn, err := s.write.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			got := map[string]int{}
			err = conn.Raw(func(dc any) error {
				nc := dc.(*pgConn).Conn.Conn().PgConn().Conn()
				raw, err := nc.(*net.TCPConn).SyscallConn()
				if err != nil {
					return err
				}
				var serr error
				err = raw.Control(func(fd uintptr) {
					for name, opt := range map[string][2]int{
						"SO_KEEPALIVE": {unix.SOL_SOCKET, unix.SO_KEEPALIVE}, "TCP_KEEPIDLE": {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
						"TCP_KEEPINTVL": {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL}, "TCP_KEEPCNT": {unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
						"TCP_USER_TIMEOUT": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT},
					} {
						v, err := unix.GetsockoptInt(int(fd), opt[0], opt[1])
						if err != nil {
							serr = err
						}
						got[name] = v
					}
				})
				if err != nil {
					return err
				}
				return serr
			})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int{"SO_KEEPALIVE": tc.keepalive}
			if tc.keepalive == 1 {
				want = map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": tc.idle, "TCP_KEEPINTVL": tc.intvl,
					"TCP_KEEPCNT": tc.count, "TCP_USER_TIMEOUT": tc.userTimeoutMS}
			}
			for name, v := range want {
				if got[name] != v {
					t.Errorf("%s = %d, want %d", name, got[name], v)
				}
			}
		})
	}
}
